"""Specification of damp_engine.degrade: seeded, recorded, unclipped degradations."""
from __future__ import annotations

import json

import numpy as np
import pytest

from damp_engine.degrade import degrade, sample_training_degradation
from damp_engine.errors import DampInputError
from damp_engine.kernels import blur, gaussian_kernel, motion_kernel
from damp_engine.names import KINDS, PARAMETERS, TRAIN_KINDS, ZERO_SHOT_KINDS
from helpers import read_window

DETERMINISTIC = ("gaussian_blur", "motion_blur", "sr")
RANDOM_KINDS = [k for k in KINDS if k not in DETERMINISTIC]


@pytest.fixture(scope="module")
def cube(shared_data) -> np.ndarray:
    """A real 31×64×64 CAVE crop in [0, 1]."""
    return read_window(shared_data / "test" / "cave_balloons.tif", 200, 200, 64, 64).astype(np.float32) / 65535


def flat(value: float, shape: tuple[int, int, int] = (31, 64, 64)) -> np.ndarray:
    """A constant cube: the clean signal is known exactly."""
    return np.full(shape, value, dtype=np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_identical_output(cube, kind):
    assert np.array_equal(degrade(cube, kind, seed=7)[0], degrade(cube, kind, seed=7)[0])


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_different_seed_gives_different_output(cube, kind):
    assert not np.array_equal(degrade(cube, kind, seed=1)[0], degrade(cube, kind, seed=2)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_keeps_shape_dtype_and_records_json(cube, kind):
    y, record = degrade(cube, kind, seed=3)
    assert y.shape == cube.shape and y.dtype == np.float32
    assert json.loads(json.dumps(record.to_dict()))["kind"] == kind


@pytest.mark.parametrize("kind", KINDS)
def test_record_replays_the_degradation(cube, kind):
    y, record = degrade(cube, kind, seed=5)
    assert np.array_equal(degrade(cube, record.kind, record.seed, **record.params)[0], y)


def test_input_is_not_modified(cube):
    before = cube.copy()
    for kind in KINDS:
        degrade(cube, kind, seed=0)
    assert np.array_equal(cube, before)


def test_gaussian_noise_std_matches_sigma():
    y, _ = degrade(flat(0.5), "gaussian_noise", seed=0, sigma=30)
    assert np.std(y - 0.5) == pytest.approx(30 / 255, rel=0.1)


def test_noise_is_not_clipped_on_dark_pixels():
    y, _ = degrade(flat(0.01), "gaussian_noise", seed=0, sigma=50)
    assert y.min() < 0


def test_noniid_noise_draws_each_band_std_from_sigmas():
    y, _ = degrade(flat(0.5), "noniid_noise", seed=0, sigmas=[10, 70])
    stds = np.std(y - 0.5, axis=(1, 2)) * 255
    assert np.all((np.abs(stds - 10) < 1.5) | (np.abs(stds - 70) < 7))


def test_poisson_variance_is_mean_over_scale():
    y, _ = degrade(flat(0.5), "poisson", seed=0, scale=20)
    assert np.var(y) == pytest.approx(0.5 / 20, rel=0.1)


def test_training_kinds_exclude_zero_shot_kinds():
    assert set(ZERO_SHOT_KINDS) == {"motion_blur", "poisson"}
    assert not set(TRAIN_KINDS) & set(ZERO_SHOT_KINDS)


def test_training_sampler_never_draws_zero_shot_kinds():
    rng = np.random.default_rng(0)
    drawn = {sample_training_degradation(rng)[0] for _ in range(500)}
    assert drawn == set(TRAIN_KINDS)


# The paper's training mix, as sample_training_degradation documents it.
TRAINING_RANGES = {
    "gaussian_noise": lambda p: p.keys() == {"sigma"} and 30 <= p["sigma"] <= 70,
    "gaussian_blur": lambda p: p == {"ksize": 9} or p == {"ksize": 15},
    "sr": lambda p: p == {"factor": 2} or p == {"factor": 4},
    "inpaint": lambda p: p.keys() == {"fraction"} and 0.7 <= p["fraction"] <= 0.8,
    "band_loss": lambda p: p.keys() == {"fraction"} and 0.1 <= p["fraction"] <= 0.2,
    "complex": lambda p: p == {},
}


def test_training_draws_stay_in_the_papers_ranges():
    rng = np.random.default_rng(1)
    draws = [sample_training_degradation(rng) for _ in range(300)]
    assert [(kind, params) for kind, params in draws if not TRAINING_RANGES[kind](params)] == []


def test_training_draws_degrade_a_crop_as_recorded(cube):
    rng = np.random.default_rng(1)
    crop = cube[:, :32, :32]
    for _ in range(20):
        kind, params = sample_training_degradation(rng)
        y, record = degrade(crop, kind, seed=0, **params)
        assert y.shape == crop.shape and np.isfinite(y).all() and not np.array_equal(y, crop), (kind, params)
        assert record.kind == kind and {k: record.params[k] for k in params} == params


def test_band_loss_zeroes_exactly_the_recorded_bands(cube):
    y, record = degrade(cube, "band_loss", seed=0, fraction=0.2)
    zeroed = [b for b in range(cube.shape[0]) if not y[b].any()]
    assert zeroed == record.bands and len(zeroed) == round(0.2 * 31)


def test_inpaint_zeroes_the_same_pixels_in_every_band(cube):
    y, record = degrade(cube + 0.1, "inpaint", seed=0, fraction=0.75)
    holes = y == 0
    assert np.array_equal(holes.all(axis=0), holes.any(axis=0))
    assert holes[0].mean() == pytest.approx(0.75, abs=0.02)
    assert record.pixel_fraction == holes[0].mean()


@pytest.mark.parametrize("kind", ["stripes", "deadlines", "impulse"])
def test_sparse_corruption_touches_only_recorded_bands(cube, kind):
    y, record = degrade(cube, kind, seed=0)
    changed = [b for b in range(cube.shape[0]) if not np.array_equal(y[b], cube[b])]
    assert changed == record.bands and len(changed) == round(31 / 3)


def test_deadlines_are_whole_zero_columns(cube):
    y, record = degrade(cube + 0.1, "deadlines", seed=0)
    dead_columns = (y[record.bands] == 0).all(axis=1)
    assert dead_columns.any() and np.array_equal(dead_columns, (y[record.bands] == 0).any(axis=1))


@pytest.mark.parametrize("factor", [2, 4])
def test_sr_output_is_constant_on_factor_blocks(cube, factor):
    y, _ = degrade(cube, "sr", factor=factor)
    blocks = y.reshape(31, 64 // factor, factor, 64 // factor, factor)
    assert np.array_equal(blocks.min(axis=(2, 4)), blocks.max(axis=(2, 4)))


def test_sr_keeps_shape_when_size_is_not_a_multiple_of_factor(cube):
    assert degrade(cube[:, :63, :58], "sr", factor=4)[0].shape == (31, 63, 58)


@pytest.mark.parametrize("kernel", [gaussian_kernel(9), gaussian_kernel(15), motion_kernel(15, 0),
                                    motion_kernel(15, 45), motion_kernel(9, 117.5)])
def test_kernels_sum_to_one(kernel):
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)


def test_gaussian_kernel_uses_the_size_rule_for_sigma():
    k = gaussian_kernel(9).astype(np.float64)
    sigma = 0.3 * ((9 - 1) / 2 - 1) + 0.8
    assert k[4, 5] / k[4, 4] == pytest.approx(np.exp(-1 / (2 * sigma ** 2)), rel=1e-5)


def test_horizontal_motion_kernel_is_a_uniform_row():
    k = motion_kernel(5, 0)
    assert np.allclose(k[2], 0.2) and k.sum() == pytest.approx(k[2].sum())


def test_blur_keeps_a_constant_image():
    assert np.allclose(blur(flat(0.3), motion_kernel(15, 30)), 0.3, atol=1e-6)


def test_parameters_cover_every_kind():
    assert set(PARAMETERS) == set(KINDS)


def test_unknown_kind_lists_the_known_kinds(cube):
    with pytest.raises(DampInputError, match="gaussian_noise"):
        degrade(cube, "fog")


def test_unknown_parameter_is_refused(cube):
    with pytest.raises(DampInputError, match="ksize"):
        degrade(cube, "gaussian_noise", ksize=9)


@pytest.mark.parametrize("kind, params", [
    ("gaussian_noise", {"sigma": -1}), ("noniid_noise", {"sigmas": []}), ("poisson", {"scale": 0}),
    ("gaussian_blur", {"ksize": 8}), ("gaussian_blur", {"ksize": 1}), ("motion_blur", {"size": 4}),
    ("sr", {"factor": 3}), ("inpaint", {"fraction": 1.0}), ("band_loss", {"fraction": -0.1}),
    ("stripes", {"band_fraction": 0}), ("impulse", {"fraction": "a lot"}),
    ("complex", {"extra": "fog"}),
])
def test_invalid_values_are_refused(cube, kind, params):
    with pytest.raises(DampInputError):
        degrade(cube, kind, **params)


def test_kernel_larger_than_image_is_refused(cube):
    with pytest.raises(DampInputError):
        degrade(cube[:, :6, :6], "gaussian_blur", ksize=15)


def test_non_cube_input_is_refused():
    with pytest.raises(DampInputError):
        degrade(np.zeros((64, 64), dtype=np.float32), "gaussian_noise")


def test_noise_weight_makes_the_noise_kinds_that_much_likelier():
    """Each noise kind `noise_weight` times as likely as each other kind: with weight 3 the two
    noise kinds of the six are 6 of every 10 draws."""
    rng = np.random.default_rng(3)
    kinds = [sample_training_degradation(rng, noise_weight=3.0)[0] for _ in range(4000)]
    share = np.mean([kind in ("gaussian_noise", "complex") for kind in kinds])
    assert abs(share - 0.6) < 0.03
    assert set(kinds) == set(TRAIN_KINDS)
