"""The quality suite: the engine part (`damp_engine.evaluation`) and the classical baselines
(`bench/baselines.py`, whose packages `make test` installs from `requirements-bench.txt`)."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from damp_engine.degrade import degrade
from damp_engine.errors import DampInputError
from damp_engine.evaluation import TASKS, run_suite, select_tasks
from damp_engine.quality import psnr
from helpers import ROOT, read_window, tiny_model_file


@pytest.fixture(scope="module")
def scene(shared_data):
    """A real CAVE test scene, 31 bands of 16-bit counts."""
    return shared_data / "test" / "cave_fake_and_real_peppers.tif"


@pytest.fixture(scope="module")
def cave_crop(scene) -> np.ndarray:
    """The centre 31 × 64 × 64 of the scene, in [0, 1]."""
    return read_window(scene, 224, 224, 64, 64).astype(np.float32) / 65535


@pytest.fixture(scope="module")
def baselines():
    """bench/baselines.py (its packages come from requirements-bench.txt, installed by `make test`)."""
    sys.path.insert(0, str(ROOT))
    from bench import baselines as module
    return module


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    """A random-initialised tiny DAMP model saved as a model file."""
    return tiny_model_file(tmp_path_factory.mktemp("model") / "random_tiny.safetensors", name="random tiny")


BASELINE_CASES = [
    ("gaussian_noise", {"sigma": 50.0}, ["FastHyDe", "wavelet BayesShrink", "TV"]),
    ("complex", {"extra": "deadlines"}, ["FastHyDe", "wavelet BayesShrink", "TV"]),
    ("poisson", {"scale": 30.0}, ["Anscombe + FastHyDe", "Anscombe + wavelet BayesShrink", "Anscombe + TV"]),
    ("gaussian_blur", {"ksize": 15}, ["Wiener (true kernel)", "Richardson-Lucy (true kernel)"]),
    ("motion_blur", {"size": 15, "angle": 45.0}, ["Wiener (true kernel)", "Richardson-Lucy (true kernel)"]),
    ("sr", {"factor": 2}, ["bicubic"]),
    ("sr", {"factor": 4}, ["bicubic"]),
    ("inpaint", {"fraction": 0.8}, ["biharmonic (true mask)"]),
    ("band_loss", {"fraction": 0.2}, ["spectral linear interpolation"]),
]


@pytest.mark.parametrize("kind, params, names", BASELINE_CASES, ids=lambda v: str(v))
def test_every_baseline_improves_on_its_degraded_input(baselines, cave_crop, kind, params, names):
    """Every method beats its input by 1 dB, except DAMP's closed forms on blur, which deconvolve
    only a blur their scene analysis finds and must at least return a blurred scene no worse."""
    degraded, record = degrade(cave_crop, kind, seed=1, **params)
    methods = baselines.baselines_for(kind)
    prefix = "Anscombe + " if kind == "poisson" else ""
    closed_forms = [prefix + baselines.CLOSED_FORM, prefix + baselines.WHOLE_CUBE]
    assert sorted(methods) == sorted([*names, *closed_forms])
    before = psnr(cave_crop, np.clip(degraded, 0, 1))
    for name, method in methods.items():
        estimate = method(degraded, record)
        assert estimate.shape == cave_crop.shape
        after = psnr(cave_crop, np.clip(estimate, 0, 1))
        if name in closed_forms and kind in baselines.BLUR_KINDS:
            assert after >= before - 1e-6, name
        else:
            assert after > before + 1.0, name


def test_bicubic_beats_a_misaligned_upsampling(baselines, cave_crop):
    degraded, record = degrade(cave_crop, "sr", seed=0, factor=4)
    aligned = baselines.bicubic_upsample(degraded, record)
    shifted = np.roll(aligned, 1, axis=(1, 2))
    assert psnr(cave_crop, aligned) > psnr(cave_crop, shifted) + 0.5


def test_inpainting_mask_is_replayed_exactly(baselines, cave_crop):
    degraded, record = degrade(cave_crop, "inpaint", seed=3, fraction=0.7)
    mask = baselines.missing_pixels(degraded, record)
    assert mask.mean() == pytest.approx(0.7, abs=1 / mask.size)
    assert (degraded[:, mask] == 0).all()


def test_bm4d_is_offered_only_when_asked(baselines):
    assert "BM4D" not in baselines.baselines_for("gaussian_noise")
    assert "BM4D" in baselines.baselines_for("gaussian_noise", bm4d=True)


def test_run_suite_scores_every_task_with_finite_numbers(random_model, scene):
    calls = []
    rows = run_suite(random_model, scenes=[scene], crop=32, on_case=lambda case, row: calls.append(case.task.name))
    assert [r["task"] for r in rows] == [t.name for t in TASKS] == calls
    for row in rows:
        assert row["shape"] == [31, 32, 32]
        values = [v for key in ("input", "damp") for v in row[key].values()]
        assert all(math.isfinite(v) for v in values), row["task"]


def test_run_suite_flags_the_zero_shot_tasks(random_model, scene):
    rows = run_suite(random_model, scenes=[scene], crop=32, tasks=["motion_blur", "poisson_30", "sr_x2"])
    assert {r["task"]: r["zero_shot"] for r in rows} == {"sr_x2": False, "motion_blur": True, "poisson_30": True}


def test_a_case_degrades_the_same_whichever_tasks_run(random_model, scene):
    alone = run_suite(random_model, scenes=[scene], crop=32, tasks=["complex"])
    paired = run_suite(random_model, scenes=[scene], crop=32, tasks=["sr_x4", "complex"])
    assert alone[0]["seed"] == paired[1]["seed"]
    assert alone[0]["input"] == paired[1]["input"]


def test_unknown_task_names_are_refused():
    with pytest.raises(DampInputError, match="gaussian_noise_30"):
        select_tasks(["gaussian_noise_31"])
