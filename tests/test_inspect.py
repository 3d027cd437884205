"""damp_engine.inspect: the dock's engine side, on real CAVE crops (no QGIS)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from damp_engine import DampCancelled, DampInputError
from damp_engine.checkpoint import save_checkpoint
from damp_engine.degrade import degrade
from damp_engine.inspect import (BAND_LOSS, BLUR, CLEAN, GAPS, NO_RANGES, NOISE, describe_prompt,
                                 inspect_raster, sample_windows)
from damp_engine.model import DAMP, get_preset
from damp_engine.prompt import METRIC_NAMES, compute_prompt

from conftest import DATA, write_raster

SCENES = ("cave_balloons", "cave_fake_and_real_peppers", "cave_thread_spools")
CROP = 128  # pixels; judged as four 64 × 64 quadrants, as ranges are measured


def cave_crop(scene: str) -> np.ndarray:
    """A clean 31 × 128 × 128 crop from the centre of a CAVE test scene, scaled to [0, 1]."""
    from damp_engine.raster import RasterReader

    with RasterReader(DATA / "test" / f"{scene}.tif") as reader:
        data, _ = reader.read(192, 192, CROP, CROP)
    return data / 65535.0


def quadrant_metrics(cube: np.ndarray) -> np.ndarray:
    """The DP of the four 64 × 64 quadrants of a 128 × 128 cube: (4, 6)."""
    half = CROP // 2
    quads = [cube[:, y:y + half, x:x + half] for y in (0, half) for x in (0, half)]
    return compute_prompt(np.stack(quads).astype(np.float32)).values.double().numpy()


def mean_metrics(cube: np.ndarray) -> dict[str, float]:
    return dict(zip(METRIC_NAMES, quadrant_metrics(cube).mean(axis=0).tolist()))


@pytest.fixture(scope="module")
def clean_cube() -> np.ndarray:
    return cave_crop(SCENES[0])


@pytest.fixture(scope="module")
def ranges(clean_cube) -> dict:
    """Clean ranges: min–max over the quadrants of three clean CAVE crops; degraded: noisy ones."""
    clean = np.concatenate([quadrant_metrics(clean_cube)] + [quadrant_metrics(cave_crop(s)) for s in SCENES[1:]])
    noisy = quadrant_metrics(degrade(clean_cube, "gaussian_noise", seed=0, sigma=50)[0])
    return {kind: {name: (float(v[:, i].min()), float(v[:, i].max())) for i, name in enumerate(METRIC_NAMES)}
            for kind, v in (("clean", clean), ("degraded", noisy))}


def test_noise_reads_as_noise(clean_cube, ranges):
    noisy, _ = degrade(clean_cube, "gaussian_noise", seed=1, sigma=40)
    reading, evidence = describe_prompt(mean_metrics(noisy), ranges)
    assert reading == NOISE
    assert any(line.startswith("High-frequency energy ratio (HFER)") and "above" in line for line in evidence)


def test_blur_reads_as_blur(clean_cube, ranges):
    blurred, _ = degrade(clean_cube, "gaussian_blur", seed=1, ksize=9)
    reading, evidence = describe_prompt(mean_metrics(blurred), ranges)
    assert reading == BLUR
    assert any("(HFER)" in line and "below" in line for line in evidence)


def test_band_loss_reads_as_band_loss(clean_cube, ranges):
    lost, _ = degrade(clean_cube, "band_loss", seed=1, fraction=0.15)
    assert describe_prompt(mean_metrics(lost), ranges)[0] == BAND_LOSS


def test_missing_pixels_read_as_gaps(clean_cube, ranges):
    holes, _ = degrade(clean_cube, "inpaint", seed=1, fraction=0.7)
    assert describe_prompt(mean_metrics(holes), ranges)[0] == GAPS


def test_clean_crop_looks_clean(clean_cube, ranges):
    reading, evidence = describe_prompt(mean_metrics(clean_cube), ranges)
    assert (reading, evidence) == (CLEAN, ["all six metrics lie inside their clean ranges"])


def test_without_ranges_the_reading_says_so(clean_cube):
    assert describe_prompt(mean_metrics(clean_cube), None) == (NO_RANGES, [])


def test_a_large_region_is_sampled_at_full_resolution():
    windows = sample_windows((10, 20, 1000, 600), max_size=256)
    assert len(windows) == 4
    assert all(w == h == 128 for _, _, w, h in windows)
    assert min(x for x, *_ in windows) == 10 and max(x + w for x, _, w, _ in windows) == 1010
    assert sample_windows((0, 0, 200, 256), max_size=256) == [(0, 0, 200, 256)]


@pytest.fixture(scope="module")
def crop_raster(tmp_path_factory, clean_cube) -> Path:
    counts = np.round(clean_cube[:, :96, :80] * 65535).astype(np.uint16)
    return write_raster(tmp_path_factory.mktemp("inspect") / "crop.tif", counts)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, ranges) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_checkpoint(DAMP(get_preset("tiny")), path, {"name": "tiny-test", "prompt_ranges": ranges})


def test_inspect_raster_reports_the_prompt_and_routing(crop_raster, tiny_model):
    from damp_engine.raster import RasterReader
    from damp_engine.scaling import measure_scaling

    result = inspect_raster(crop_raster, model=tiny_model, device="cpu")
    with RasterReader(crop_raster) as reader:
        cube, _ = reader.read_all()
        factor = measure_scaling(reader).factor
    expected = compute_prompt(cube / np.float32(factor)).as_dict()
    assert result.metrics == pytest.approx(expected, rel=1e-6)
    assert result.windows == [(0, 0, 80, 96)] and result.bands == 31
    preset = get_preset("tiny")
    assert len(result.block_names) == len(result.gates) == sum(preset.dec_blocks)
    assert all(len(row) == preset.experts and sum(row) == pytest.approx(1.0) for row in result.gates)
    assert np.shape(result.spatial_share) == np.shape(result.gates)
    assert (result.device, result.model) == ("CPU", "tiny-test")
    assert result.reading == describe_prompt(result.metrics, result.ranges)[0]


def test_inspect_window_is_clipped_and_checked(crop_raster, tiny_model):
    result = inspect_raster(crop_raster, window=(40, 50, 100, 100), model=tiny_model, device="cpu")
    assert result.windows == [(40, 50, 40, 46)]
    with pytest.raises(DampInputError, match="outside"):
        inspect_raster(crop_raster, window=(200, 0, 10, 10), model=tiny_model, device="cpu")
    with pytest.raises(DampInputError, match="Zoom out"):
        inspect_raster(crop_raster, window=(0, 0, 4, 50), model=tiny_model, device="cpu")


def test_inspect_can_be_cancelled(crop_raster, tiny_model):
    with pytest.raises(DampCancelled):
        inspect_raster(crop_raster, model=tiny_model, device="cpu", cancelled=lambda: True)
