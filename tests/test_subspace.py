"""The scene's spectral subspace, the validity mask and the closed-form restoration (DESIGN §4a)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from damp_engine.degrade import degrade
from damp_engine.evaluation import load_reference
from damp_engine.quality import psnr
from damp_engine.restoration import restore_cube
from damp_engine.scene_analysis import scene_basis
from damp_engine.subspace import (MAX_RANK, MIN_RANK, akima, covariance, fit_basis, noise_from_covariance, project,
                                  reconstruct)
from damp_engine.validity import validity_mask


def low_rank_cube(bands: int = 40, rows: int = 64, cols: int = 64, rank: int = 5, seed: int = 0) -> np.ndarray:
    """A cube whose spectra are mixtures of `rank` smooth endmembers with smooth abundances."""
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, bands)
    endmembers = np.stack([0.3 + 0.25 * np.sin(2 * np.pi * (k + 1) * wl / 2 + k) for k in range(rank)])
    y, x = np.mgrid[0:rows, 0:cols] / 64.0
    abundances = np.stack([1 + np.sin(3 * (k + 1) * x + k) * np.cos(2 * (k + 1) * y) for k in range(rank)])
    abundances /= abundances.sum(axis=0, keepdims=True)
    return np.einsum("kc,khw->chw", endmembers, abundances).astype(np.float32) + 0 * rng.random()


def fitted(cube: np.ndarray, valid: np.ndarray | None = None):
    valid = np.ones(cube.shape, bool) if valid is None else valid
    return scene_basis(cube[None], valid[None])


def test_noise_levels_recover_band_noise():
    rng = np.random.default_rng(1)
    clean = low_rank_cube()
    sigmas = np.linspace(0.01, 0.05, clean.shape[0])
    noisy = clean + sigmas[:, None, None] * rng.standard_normal(clean.shape)
    estimate = noise_from_covariance(covariance(noisy.reshape(clean.shape[0], -1).astype(np.float64))[1])
    np.testing.assert_allclose(estimate, sigmas, rtol=0.15)


def test_rank_follows_the_signal_and_stays_bounded():
    rng = np.random.default_rng(2)
    clean = low_rank_cube(rank=6)
    noisy = clean + 0.02 * rng.standard_normal(clean.shape).astype(np.float32)
    basis = fitted(noisy)
    assert MIN_RANK <= basis.rank <= 8
    assert basis.basis.shape == (40, MAX_RANK)
    assert not basis.basis[:, basis.rank:].any()


def test_projection_is_exact_for_spectra_in_the_subspace():
    clean = low_rank_cube() + 1e-4 * np.random.default_rng(3).standard_normal((40, 64, 64)).astype(np.float32)
    basis = fitted(clean)
    x = torch.from_numpy(clean[None]).double()
    back = reconstruct(basis, project(basis, x))[0].numpy()
    assert psnr(clean, back) > 60


def test_missing_bands_of_a_pixel_come_from_its_valid_bands():
    cube = low_rank_cube() + 1e-4 * np.random.default_rng(4).standard_normal((40, 64, 64)).astype(np.float32)
    valid = np.ones(cube.shape, bool)
    valid[5:12, :, 10:20] = False          # dead columns in seven bands
    basis = fitted(np.where(valid, cube, 0), valid)
    x = torch.from_numpy(np.where(valid, cube, 0)[None]).double()
    z = project(basis, x, torch.from_numpy(valid[None]))
    back = reconstruct(basis, z)[0].numpy()
    assert psnr(cube[5:12, :, 10:20], back[5:12, :, 10:20]) > 35  # zero-filled: about 8 dB


def test_lost_bands_get_interpolated_basis_rows():
    cube = low_rank_cube(bands=30)
    valid = np.ones(cube.shape, bool)
    valid[[7, 8, 20]] = False
    basis = fit_basis(np.where(valid, cube, 0).reshape(30, -1), valid.reshape(30, -1))
    assert basis.lost_bands.tolist() == [i in (7, 8, 20) for i in range(30)]
    assert np.isnan(basis.noise_sigma[7]) and np.isfinite(basis.noise_sigma[6])
    restored = reconstruct(basis, project(basis, torch.from_numpy(cube[None]).double(),
                                          torch.from_numpy(valid[None])))[0].numpy()
    assert psnr(cube[[7, 8, 20]], restored[[7, 8, 20]]) > 30


def test_closed_form_denoises_a_low_rank_scene():
    rng = np.random.default_rng(5)
    clean = low_rank_cube(rows=96, cols=96)
    noisy = (clean + 30 / 255 * rng.standard_normal(clean.shape)).astype(np.float32)
    basis = fitted(noisy)
    x, v = torch.from_numpy(noisy[None]), torch.ones((1, *noisy.shape), dtype=torch.bool)
    out = restore_cube(None, basis, x, v, torch.zeros(1, 6)).cube[0].numpy()
    assert psnr(clean, out) > psnr(clean, noisy) + 12


def test_keep_valid_returns_measured_samples_unchanged_and_fills_gaps():
    clean = low_rank_cube()
    gaps = np.zeros(clean.shape[1:], bool)
    gaps[::3, ::2] = True
    degraded = clean.copy()
    degraded[:, gaps] = 0
    valid, void = validity_mask(degraded, np.ones(clean.shape, bool))
    assert not void.any() and not valid[:, gaps].any() and valid[:, ~gaps].all()
    basis = fitted(degraded, valid)
    x, v = torch.from_numpy(degraded[None]), torch.from_numpy(valid[None])
    out = restore_cube(None, basis, x, v, torch.zeros(1, 6), keep_valid=True).cube[0].numpy()
    assert np.array_equal(out[:, ~gaps], degraded[:, ~gaps])
    assert psnr(clean[:, gaps][..., None], out[:, gaps][..., None]) > 35


def test_validity_mask_finds_gaps_dead_lines_lost_bands_and_void():
    cube = low_rank_cube(bands=10, rows=16, cols=16)
    reader_valid = np.ones(cube.shape, bool)
    reader_valid[:, 0, 0] = False      # nodata in every band: void
    cube[:, 5, 5] = 0                  # a zero spectrum: a gap
    cube[3, :, 7] = 0                  # a dead column in band 4
    lost = np.zeros(10, bool)
    lost[9] = True
    valid, void = validity_mask(cube, reader_valid, lost)
    assert void[0, 0] and void.sum() == 1
    assert not valid[:, 5, 5].any() and not void[5, 5]
    assert not valid[3, :, 7].any() and valid[2, :, 7].all()
    assert not valid[9].any()
    fill = np.zeros((16, 16), bool)
    fill[0, 0] = fill[2, 2] = True
    valid, void = validity_mask(cube, reader_valid, lost, fill)
    assert not void.any() and not valid[:, 2, 2].any()


@pytest.mark.parametrize("bands", [31, 224])
def test_network_input_has_the_same_size_for_any_band_count(bands):
    from damp_engine.restoration import network_input

    cube = low_rank_cube(bands=bands, rows=32, cols=32)
    basis = fitted(cube)
    inputs, z, _ = network_input(basis, torch.from_numpy(cube[None]), torch.ones((1, *cube.shape), dtype=torch.bool))
    assert inputs.shape == (1, 2 * MAX_RANK + 1, 32, 32) and z.shape == (1, MAX_RANK, 32, 32)


def test_akima_is_akimas_interpolation_held_constant_beyond_the_ends():
    from scipy.interpolate import Akima1DInterpolator

    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(400, 2500, 15))
    y = rng.standard_normal((15, 3))
    y[5:9] = 1.0  # a flat stretch, where the weights of both secant differences vanish
    at = np.linspace(x[0], x[-1], 200)
    assert np.allclose(akima(x, y, at), Akima1DInterpolator(x, y, axis=0)(at), atol=1e-12)
    assert np.array_equal(akima(x, y, np.array([x[0] - 50, x[-1] + 50])), y[[0, -1]])
    assert np.allclose(akima(x[:2], y[:2], x[:2].mean()[None]), y[:2].mean(axis=0))


def test_lost_bands_of_a_real_scene_are_interpolated_better_than_by_straight_lines(shared_data):
    """A band lost in the whole scene comes from the pixel's other bands along wavelength (Akima):
    on a CAVE scene with 20 % of its bands zeroed, closer than linear spectral interpolation."""
    clean = load_reference(shared_data / "test/cave_thread_spools.tif", crop=64)
    degraded, record = degrade(clean, "band_loss", seed=2, fraction=0.2)
    lost = np.zeros(clean.shape[0], bool)
    lost[record.bands] = True
    positions = np.linspace(400.0, 700.0, clean.shape[0])
    valid = np.broadcast_to(~lost[:, None, None], clean.shape).copy()
    basis = fit_basis(degraded.reshape(clean.shape[0], -1), valid.reshape(clean.shape[0], -1), positions)
    restored = restore_cube(None, basis, torch.from_numpy(degraded)[None], torch.from_numpy(valid)[None],
                            torch.zeros(1, 6), keep_valid=True).cube[0].numpy()
    assert np.array_equal(restored[~lost], degraded[~lost])
    flat = clean[~lost].reshape(int((~lost).sum()), -1)
    linear = np.stack([np.interp(positions[lost], positions[~lost], spectrum) for spectrum in flat.T], axis=1)
    ours = psnr(clean[lost], restored[lost].clip(0, 1))
    assert ours > psnr(clean[lost], linear.reshape(-1, *clean.shape[1:]).clip(0, 1)) + 0.5


def test_pixels_of_a_scene_with_lost_bands_get_their_map_fit_over_the_other_bands():
    """With bands lost in the whole scene, every pixel is fitted over its own valid bands (the MAP
    least squares of `project`), whether it misses only the lost bands (one matrix product for
    them all) or more (a dead-line pixel)."""
    cube = low_rank_cube(bands=30, rows=16, cols=16)
    cube += 0.01 * np.random.default_rng(1).standard_normal(cube.shape).astype(np.float32)
    valid = np.ones(cube.shape, bool)
    valid[4:6] = False                      # lost bands
    valid[10:14, 3, :] = False              # a dead line in four more bands
    basis = fit_basis(cube.reshape(30, -1), valid.reshape(30, -1))
    z = project(basis, torch.from_numpy(cube)[None], torch.from_numpy(valid)[None])[0].numpy()
    white = basis.basis * basis.weights[:, None]
    prior = np.diag(1.0 / basis.signal_std ** 2)
    for row, col in ((0, 0), (3, 5), (9, 12)):
        ok = valid[:, row, col]
        a = white[ok]
        pixel = (cube[ok, row, col] - basis.mean[ok]) * basis.weights[ok]
        expected = np.linalg.solve(a.T @ a + prior, a.T @ pixel)
        expected[basis.rank:] = 0
        assert np.allclose(z[:, row, col], expected, atol=1e-4), (row, col)


def test_lost_bands_the_caller_discards_are_not_interpolated():
    """Bands nodata in the whole raster are blanked in the output, so `restore_cube` leaves them
    as they are when told (`discard`) and still interpolates the other lost bands."""
    cube = low_rank_cube(bands=30, rows=16, cols=16)
    valid = np.ones(cube.shape, bool)
    valid[[4, 5, 20]] = False
    degraded = np.where(valid, cube, 0).astype(np.float32)
    basis = fit_basis(degraded.reshape(30, -1), valid.reshape(30, -1))
    discard = np.zeros(30, bool)
    discard[20] = True
    x, ok = torch.from_numpy(degraded)[None], torch.from_numpy(valid)[None]
    every = restore_cube(None, basis, x, ok, torch.zeros(1, 6), keep_valid=True).cube[0].numpy()
    kept = restore_cube(None, basis, x, ok, torch.zeros(1, 6), keep_valid=True, discard=discard).cube[0].numpy()
    assert np.array_equal(kept[[4, 5]], every[[4, 5]])
    assert psnr(cube[[4, 5]], kept[[4, 5]]) > 30
    assert not np.array_equal(kept[20], every[20])
