"""damp_engine.inspect: the dock's engine side, on real CAVE crops (no QGIS)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from damp_engine import DampCancelled, DampInputError
from damp_engine.degrade import degrade
from damp_engine.inspect import inspect_raster
from damp_engine.model import get_preset
from damp_engine.prompt import METRIC_NAMES, compute_prompt
from damp_engine.raster import RasterReader

from helpers import tiny_model_file, write_raster

SCENES = ("cave_balloons", "cave_fake_and_real_peppers", "cave_thread_spools")
CROP = 128  # pixels; judged as four 64 × 64 quadrants, as ranges are measured


def cave_crop(shared_data: Path, scene: str) -> np.ndarray:
    """A clean 31 × 128 × 128 crop from the centre of a CAVE test scene, scaled to [0, 1]."""
    with RasterReader(shared_data / "test" / f"{scene}.tif") as reader:
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
def clean_cube(shared_data) -> np.ndarray:
    return cave_crop(shared_data, SCENES[0])


@pytest.fixture(scope="module")
def ranges(shared_data, clean_cube) -> dict:
    """Clean ranges: min–max over the quadrants of three clean CAVE crops; degraded: noisy ones."""
    others = [quadrant_metrics(cave_crop(shared_data, scene)) for scene in SCENES[1:]]
    clean = np.concatenate([quadrant_metrics(clean_cube), *others])
    noisy = quadrant_metrics(degrade(clean_cube, "gaussian_noise", seed=0, sigma=50)[0])
    return {kind: {name: (float(v[:, i].min()), float(v[:, i].max())) for i, name in enumerate(METRIC_NAMES)}
            for kind, v in (("clean", clean), ("degraded", noisy))}


@pytest.fixture(scope="module")
def crop_raster(tmp_path_factory, clean_cube) -> Path:
    counts = np.round(clean_cube[:, :96, :80] * 65535).astype(np.uint16)
    return write_raster(tmp_path_factory.mktemp("inspect") / "crop.tif", counts)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, ranges) -> Path:
    return tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.safetensors", name="tiny-test",
                           prompt_ranges=ranges)


def test_inspect_raster_reports_the_prompt_and_routing(crop_raster, tiny_model):
    from damp_engine.scene import prompt_raster

    result = inspect_raster(crop_raster, model=tiny_model, device="cpu")
    assert result.metrics == prompt_raster(crop_raster).metrics  # one scene analysis for all
    assert result.windows == [(0, 0, 64, 64), (16, 0, 64, 64), (0, 32, 64, 64), (16, 32, 64, 64)]
    assert result.bands == 31
    preset = get_preset("tiny")
    assert len(result.block_names) == len(result.gates) == sum(preset.dec_blocks)
    assert all(len(row) == preset.experts and sum(row) == pytest.approx(1.0) for row in result.gates)
    assert np.shape(result.spatial_share) == np.shape(result.gates)
    assert (result.device, result.model) == ("CPU", "tiny-test")
    from damp_engine.reading import read_raster

    assert result.degradation.to_dict() == read_raster(crop_raster).to_dict()  # what every front end shows
    assert (result.reading, result.evidence) == (result.degradation.sentence, result.degradation.evidence)


def test_inspect_window_is_clipped_and_checked(crop_raster, tiny_model):
    result = inspect_raster(crop_raster, window=(40, 50, 100, 100), model=tiny_model, device="cpu")
    assert result.windows == [(40, 50, 40, 40), (40, 56, 40, 40)]
    with pytest.raises(DampInputError, match="outside"):
        inspect_raster(crop_raster, window=(200, 0, 10, 10), model=tiny_model, device="cpu")
    with pytest.raises(DampInputError, match="Zoom out"):
        inspect_raster(crop_raster, window=(0, 0, 4, 50), model=tiny_model, device="cpu")


def test_inspect_can_be_cancelled(crop_raster, tiny_model):
    with pytest.raises(DampCancelled):
        inspect_raster(crop_raster, model=tiny_model, device="cpu", cancelled=lambda: True)
