"""Scoring the degraded part of a raster on its own: the values a DAMP_DEGRADATION record says
were changed are found again exactly, and scored apart from the untouched rest."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import smooth_cube, write_raster
from damp_engine.cli import main
from damp_engine.degradation_scores import degraded_part, evaluate_degraded_part, read_record
from damp_engine.degrade import degrade
from damp_engine.raster import RasterReader
from damp_engine.scene import degrade_raster, evaluate_rasters

SHAPE = (31, 40, 48)


@pytest.fixture(scope="module")
def cube() -> np.ndarray:
    return smooth_cube(*SHAPE)


@pytest.mark.parametrize("kind", ["stripes", "deadlines", "impulse", "inpaint", "band_loss"])
def test_the_part_is_exactly_the_values_the_degradation_changed(cube, kind):
    degraded, record = degrade(cube, kind, seed=4)
    part = degraded_part(record.to_dict(), cube.shape)
    assert part is not None and part.kind == kind
    assert np.array_equal(part.mask, degraded != cube)


def test_lost_bands_are_the_part_of_band_loss(cube):
    _, record = degrade(cube, "band_loss", seed=1, fraction=0.1)
    assert degraded_part(record.to_dict(), cube.shape).bands == record.bands


@pytest.mark.parametrize("kind", ["gaussian_noise", "gaussian_blur", "sr", "complex"])
def test_a_degradation_of_every_value_has_no_separate_part(cube, kind):
    _, record = degrade(cube, kind, seed=0)
    assert degraded_part(record.to_dict(), cube.shape) is None


def test_a_record_of_another_raster_is_ignored(cube):
    _, record = degrade(cube, "band_loss", seed=0, fraction=0.5)
    assert degraded_part(record.to_dict(), (3, 40, 48)) is None


@pytest.fixture(scope="module")
def rasters(tmp_path_factory, cube):
    """A clean raster, its striped copy, and a "restoration" that repairs the stripes exactly but
    changes every other value a little (what a real restoration does), carrying the record."""
    folder = tmp_path_factory.mktemp("part")
    clean = write_raster(folder / "clean.tif", cube)
    striped = folder / "striped.tif"
    record = degrade_raster(clean, striped, "stripes", seed=2)
    with RasterReader(striped) as reader:
        metadata = reader.info.metadata
    repaired = cube + np.float32(0.01) * np.random.default_rng(0).standard_normal(cube.shape, dtype=np.float32)
    restored = write_raster(folder / "restored.tif", repaired)
    from osgeo import gdal

    ds = gdal.Open(str(restored), gdal.GA_Update)
    ds.SetMetadata(metadata)
    ds = None
    return {"clean": clean, "striped": striped, "restored": restored, "record": record}


def test_the_record_is_read_from_the_raster(rasters):
    assert read_record(rasters["striped"]) == rasters["record"].to_dict()
    assert read_record(rasters["clean"]) is None


def test_the_untouched_bands_no_longer_flatter_the_degraded_raster(rasters):
    whole = evaluate_rasters(rasters["clean"], rasters["striped"])
    part = evaluate_degraded_part(rasters["clean"], rasters["striped"])
    assert part.bands_scored == len(rasters["record"].bands)
    assert part.scores["psnr"] < whole["psnr"] - 20


def test_the_restored_part_scores_better_than_the_degraded_part(rasters):
    before = evaluate_degraded_part(rasters["clean"], rasters["striped"])
    after = evaluate_degraded_part(rasters["clean"], rasters["restored"])  # record inherited
    assert after.scores["psnr"] > before.scores["psnr"] + 10
    assert after.scores["ergas"] < before.scores["ergas"]


def test_no_record_means_no_part(rasters):
    assert evaluate_degraded_part(rasters["clean"], rasters["clean"]) is None


def test_cli_evaluate_adds_the_degraded_part(rasters, capsys):
    assert main(["evaluate", str(rasters["clean"]), str(rasters["striped"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["degraded_part"]["kind"] == "stripes"
    assert result["degraded_part"]["psnr"] < result["psnr"]
    main(["evaluate", str(rasters["clean"]), str(rasters["striped"])])
    assert "degraded part only (stripes:" in capsys.readouterr().out
