"""Streaming tiled inference: tiles reproduce the whole-image pass, rasters keep their metadata,
gaps and types are handled, cancels leave nothing, and a GPU out-of-memory error backs off."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from helpers import smooth_cube, tiny_model_file, write_raster
from damp_engine.checkpoint import DEFAULT_MODEL, load_model
from damp_engine.errors import DampCancelled, DampInputError
from damp_engine.limits import GPU_BATCH, batch_for
from damp_engine.inference import Backoff, NetworkRunner
from damp_engine.prompt import METRIC_NAMES
from damp_engine.raster import RasterReader
from damp_engine.tilegrid import TileGrid
from damp_engine.tile_outputs import OutputFormat
from damp_engine.tiling import (prompt_map_raster, restore_raster, routing_raster,
                                upscale_raster)

WAVELENGTHS = list(np.linspace(420.0, 980.0, 31).round(2))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The bundled model if it exists, else a random-init tiny model saved and loaded like one."""
    if DEFAULT_MODEL.is_file():
        return load_model(DEFAULT_MODEL, device="cpu")
    path = tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.safetensors", name="random tiny")
    return load_model(path, device="cpu")


def noisy_cube(bands: int = 31, rows: int = 70, cols: int = 90, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cube = smooth_cube(bands, rows, cols, seed) + 0.05 * rng.standard_normal((bands, rows, cols))
    return cube.astype(np.float32)


@pytest.fixture
def raster(tmp_path) -> Path:
    return write_raster(tmp_path / "in.tif", noisy_cube(), nodata=-9999.0, wavelengths=WAVELENGTHS)


def read(path: Path) -> np.ndarray:
    with RasterReader(path) as reader:
        return reader.read_all()[0]


def test_tiled_output_equals_whole_image_output(tmp_path, model):
    """Seamless by construction (DESIGN §4a.6): the scene's basis, thresholds and prompt serve
    every tile and the network pools only locally, so with the default halo tiles agree with a
    whole-image pass to 1e-4 (the data lie in about [0, 1])."""
    src = write_raster(tmp_path / "in.tif", noisy_cube(rows=96, cols=160))
    restore_raster(src, tmp_path / "whole.tif", model=model, tile=512)
    whole = read(tmp_path / "whole.tif")
    for tile in (32, 64):
        report = restore_raster(src, tmp_path / "tiled.tif", model=model, tile=tile)
        assert report.tiles > 4
        diff = np.abs(read(tmp_path / "tiled.tif") - whole)
        assert diff.max() < 1e-4, (tile, diff.max(), diff.mean())


def test_tile_prompts_route_each_tile_by_its_own(tmp_path, model):
    cube = noisy_cube(rows=64, cols=256)
    cube[:, :, 128:] += np.random.default_rng(5).normal(0.0, 0.15, (31, 64, 128)).astype(np.float32)
    src = write_raster(tmp_path / "in.tif", cube)
    scene_run = restore_raster(src, tmp_path / "scene.tif", model=model, tile=64)
    own_run = restore_raster(src, tmp_path / "own.tif", model=model, tile=64, prompt_scope="tile")
    # The halves differ in noise: the tiles' own prompts route them otherwise than the scene's, and
    # the restoration follows (the bundled model changes the noisiest tile by less than 1e-5).
    assert own_run.routing != scene_run.routing
    change = np.abs(read(own_run.output) - read(scene_run.output))
    assert change[:, :, :64].max() > 1e-5


def test_unknown_prompt_scope_is_a_clear_error(tmp_path, raster, model):
    with pytest.raises(DampInputError, match="prompt scope"):
        restore_raster(raster, tmp_path / "out.tif", model=model, prompt_scope="pixel")
    assert not (tmp_path / "out.tif").exists()


def test_georeferencing_nodata_and_wavelengths_survive(tmp_path, raster, model):
    report = restore_raster(raster, tmp_path / "out.tif", model=model, tile=48, halo=16)
    src, out = gdal.Open(str(raster)), gdal.Open(str(report.output))
    assert out.GetGeoTransform() == src.GetGeoTransform()
    assert out.GetProjection() == src.GetProjection()
    assert (out.RasterCount, out.RasterXSize, out.RasterYSize) == (31, 90, 70)
    with RasterReader(report.output) as reader:
        assert reader.info.wavelengths == pytest.approx(WAVELENGTHS)
        assert reader.info.nodata == -9999.0
        assert reader.info.dtype == "float32"


def test_nodata_everywhere_stays_nodata_and_partial_gaps_are_filled(tmp_path, model):
    cube = noisy_cube()
    cube[:, 10:14, 20:30] = -9999.0      # nodata in every band
    cube[5:9, 40:44, 50:60] = -9999.0    # nodata in a few bands only
    src = write_raster(tmp_path / "gaps.tif", cube, nodata=-9999.0)
    with RasterReader(restore_raster(src, tmp_path / "out.tif", model=model, tile=48).output) as reader:
        data, valid = reader.read_all()
    assert not valid[:, 10:14, 20:30].any()
    assert valid[:, 40:44, 50:60].all() and np.isfinite(data).all()


def test_mask_pixels_are_filled_even_where_nodata(tmp_path, model):
    cube = noisy_cube()
    cube[:, 10:14, 20:30] = -9999.0
    src = write_raster(tmp_path / "gaps.tif", cube, nodata=-9999.0)
    mask = np.zeros((1, 70, 90), np.uint8)
    mask[0, 10:14, 20:25] = 1
    mask_path = write_raster(tmp_path / "mask.tif", mask)
    report = restore_raster(src, tmp_path / "out.tif", model=model, tile=48, mask=mask_path)
    with RasterReader(report.output) as reader:
        valid = reader.read_all()[1]
    assert valid[:, 10:14, 20:25].all() and not valid[:, 10:14, 25:30].any()


def test_bad_bands_are_regenerated_from_the_other_bands(tmp_path, model):
    cube = noisy_cube()
    outputs = []
    for garbage in (0.0, 5.0):
        cube[3] = garbage
        src = write_raster(tmp_path / f"in{garbage}.tif", cube)
        outputs.append(read(restore_raster(src, tmp_path / f"out{garbage}.tif", model=model, tile=48,
                                           bad_bands=[4]).output))
    assert np.array_equal(outputs[0], outputs[1])
    with pytest.raises(DampInputError, match="band 40"):
        restore_raster(src, tmp_path / "bad.tif", model=model, bad_bands=[40])


@pytest.mark.parametrize("dtype, scale, nodata", [("int16", 1e-4, -32768), ("uint16", None, 0)])
def test_integer_rasters_round_trip_in_type(tmp_path, model, dtype, scale, nodata):
    physical = noisy_cube(rows=40, cols=48).clip(0.01, None)
    stored = np.rint(physical / (scale or 1e-3)).astype(dtype)
    stored[:, 0, 0] = nodata
    src = write_raster(tmp_path / "in.tif", stored, nodata=nodata, scale=scale)
    report = restore_raster(src, tmp_path / "out.tif", model=model, tile=32)
    ds = gdal.Open(str(report.output))
    band = ds.GetRasterBand(1)
    assert gdal.GetDataTypeName(band.DataType) == {"int16": "Int16", "uint16": "UInt16"}[dtype]
    assert (band.GetScale() or 1.0) == pytest.approx(scale or 1.0)
    assert band.GetNoDataValue() == nodata
    out = ds.ReadAsArray()
    assert (out[:, 0, 0] == nodata).all() and (out[:, 1:, 1:] != nodata).all()
    float_src = write_raster(tmp_path / "float.tif", stored.astype(np.float32) * np.float32(scale or 1.0),
                             nodata=float(nodata) * (scale or 1.0))
    reference = read(restore_raster(float_src, tmp_path / "float_out.tif", model=model, tile=32).output)
    in_range = (reference >= 1.01 * (scale or 1.0)) & (reference <= 32767 * (scale or 1.0))
    assert np.abs(read(report.output) - reference)[in_range].max() <= 0.51 * (scale or 1.0)


def test_output_format_clips_rounds_and_keeps_off_nodata():
    fmt = OutputFormat(np.dtype("uint16"), 0.0, np.ones(1, np.float32), np.zeros(1, np.float32))
    physical = np.array([[[-5.0, 0.2, 1.6, 70000.0, np.nan]]], np.float32)
    assert fmt.encode(physical).tolist() == [[[1, 1, 2, 65535, 0]]]


def test_cancel_leaves_nothing_and_keeps_an_existing_output(tmp_path, raster, model):
    out = write_raster(tmp_path / "out.tif", smooth_cube(3, 8, 8))
    previous = out.read_bytes()
    calls = iter([False, True])
    with pytest.raises(DampCancelled):
        restore_raster(raster, out, model=model, tile=32, batch=1, routing_map=tmp_path / "routing.tif",
                       report=tmp_path / "report.json", cancelled=lambda: next(calls))
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "out.tif"]


def test_progress_rises_to_one(tmp_path, raster, model):
    seen = []
    restore_raster(raster, tmp_path / "out.tif", model=model, tile=32, progress=seen.append)
    assert len(seen) == 9 and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)


@pytest.mark.parametrize("rows, cols", [(20, 24), (37, 53)])
def test_small_and_odd_sizes(tmp_path, model, rows, cols):
    src = write_raster(tmp_path / "in.tif", noisy_cube(rows=rows, cols=cols))
    out = read(restore_raster(src, tmp_path / "out.tif", model=model, tile=32, halo=16).output)
    assert out.shape == (31, rows, cols) and np.isfinite(out).all()


def test_224_bands_with_empty_water_vapour_bands(tmp_path, model):
    cube = noisy_cube(bands=224, rows=40, cols=48)
    cube[129:135] = -32768
    src = write_raster(tmp_path / "in.tif", cube, nodata=-32768)
    with RasterReader(restore_raster(src, tmp_path / "out.tif", model=model, tile=64).output) as reader:
        data, valid = reader.read_all()
    assert data.shape == (224, 40, 48)
    assert not valid[129:135].any() and valid[:129].all() and valid[135:].all()


def test_upscale_output_grid(tmp_path, raster, model):
    report = upscale_raster(raster, tmp_path / "up.tif", 2, model=model, tile=64, halo=16)
    src, out = gdal.Open(str(raster)), gdal.Open(str(report.output))
    assert (out.RasterXSize, out.RasterYSize, out.RasterCount) == (180, 140, 31)
    gt, fine = src.GetGeoTransform(), out.GetGeoTransform()
    assert fine == pytest.approx((gt[0], gt[1] / 2, 0.0, gt[3], 0.0, gt[5] / 2))
    assert (report.width, report.height) == (180, 140)
    with pytest.raises(DampInputError, match="factor"):
        upscale_raster(raster, tmp_path / "bad.tif", 1, model=model)


def test_routing_and_prompt_maps_are_georeferenced(tmp_path, raster, model):
    report = restore_raster(raster, tmp_path / "out.tif", model=model, tile=32, routing_map=tmp_path / "routing.tif",
                            prompt_map=tmp_path / "prompt.tif", report=tmp_path / "report.json")
    src = gdal.Open(str(raster))
    routing, prompt = gdal.Open(str(report.routing_map)), gdal.Open(str(report.prompt_map))
    blocks = model.net.block_names
    for ds in (routing, prompt):
        assert ds.GetGeoTransform() == src.GetGeoTransform() and ds.GetProjection() == src.GetProjection()
    assert routing.RasterCount == len(blocks)
    assert [routing.GetRasterBand(i + 1).GetDescription().split(":")[0] for i in range(len(blocks))] == blocks
    experts = routing.ReadAsArray().reshape(len(blocks), 70, 90)
    assert experts.min() >= 1 and experts.max() <= model.net.preset.experts
    values = prompt.ReadAsArray()
    assert values.shape == (6, 70, 90) and np.isfinite(values).all()
    assert (values[:, :32, :32] == values[:, :1, :1]).all()
    assert prompt.GetRasterBand(1).GetDescription().startswith("HFER")


def test_report_json_is_written(tmp_path, raster, model):
    report = restore_raster(raster, tmp_path / "out.tif", model=model, tile=48, report=tmp_path / "report.json")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == json.loads(json.dumps(report.to_dict()))
    assert set(saved["seconds"]) == {"analysis", "read", "prompt", "network", "write", "total"}
    assert set(saved["scene_prompt"]) == set(METRIC_NAMES)
    assert saved["scene"]["basis"]["rank"] >= 4
    assert list(saved["routing"]) == model.net.block_names
    assert all(sum(gates) == pytest.approx(1.0) for gates in saved["routing"].values())
    assert "cpu" in report.summary() and "Dominant experts" in report.summary()


def test_routing_raster_writes_only_the_map(tmp_path, raster, model):
    report = routing_raster(raster, tmp_path / "routing.tif", model=model, tile=48)
    assert report.output is None and report.routing_map.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif", "routing.tif"]


def test_prompt_map_raster_has_six_metric_bands(tmp_path, raster):
    out = gdal.Open(str(prompt_map_raster(raster, tmp_path / "prompt.tif", tile=40)))
    assert out.RasterCount == 6 and out.GetGeoTransform() == gdal.Open(str(raster)).GetGeoTransform()
    assert np.isfinite(out.ReadAsArray()).all()


def test_read_windows_are_aligned_and_cover_tile_and_halo():
    grid = TileGrid(width=200, height=150, halo=16, align=32, min_read=32)
    windows = list(grid.windows(48))
    assert len({w.read_shape for w in windows if w.rx + w.rw < 200 and w.ry + w.rh < 150}) == 1
    for window in windows:
        assert window.rx % 32 == 0 and window.ry % 32 == 0
        assert window.rx <= max(0, window.x0 - 16) and window.rx + window.rw >= min(200, window.x0 + window.w + 16)
        assert window.ry <= max(0, window.y0 - 16) and window.ry + window.rh >= min(150, window.y0 + window.h + 16)
        assert window.rw % 32 == 0 or window.rx + window.rw == 200


def test_tiles_go_one_at_a_time_on_the_cpu_and_in_batches_on_a_gpu(tmp_path, raster, model):
    assert (batch_for(None, "cpu"), batch_for(None, "cuda"), batch_for(3, "cpu")) == (1, GPU_BATCH, 3)
    assert restore_raster(raster, tmp_path / "out.tif", model=model, tile=32).batch == 1


def test_backoff_halves_batch_then_tile_then_gives_up():
    backoff = Backoff(batch=4, tile=64, min_tile=32)
    assert backoff.shrink(4) == "batch" and backoff.batch == 2
    assert backoff.shrink(2) == "batch" and backoff.batch == 1
    assert backoff.shrink(1) == "tile" and backoff.tile == 32
    with pytest.raises(DampInputError, match="out of memory"):
        backoff.shrink(1)


def _fail_once(monkeypatch, when):
    """Make the network raise a CUDA out-of-memory error the first time `when(batch)` holds."""
    real, state = NetworkRunner.restore, {"raised": False}

    def flaky(self, basis, x, *args):
        if not state["raised"] and when(x):
            state["raised"] = True
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, basis, x, *args)

    monkeypatch.setattr(NetworkRunner, "restore", flaky)
    return state


def test_out_of_memory_halves_the_batch_and_goes_on(tmp_path, raster, model, monkeypatch):
    expected = read(restore_raster(raster, tmp_path / "ref.tif", model=model, tile=32, batch=1).output)
    state = _fail_once(monkeypatch, lambda x: x.shape[0] > 1)
    messages = []
    report = restore_raster(raster, tmp_path / "out.tif", model=model, tile=32, batch=2, log=messages.append)
    assert state["raised"] and report.batch == 1 and any("batch lowered to 1" in m for m in messages)
    np.testing.assert_allclose(read(report.output), expected, atol=1e-5)


def test_out_of_memory_on_one_tile_halves_the_tile(tmp_path, raster, model, monkeypatch):
    expected = read(restore_raster(raster, tmp_path / "ref.tif", model=model, tile=32, batch=1).output)
    state = _fail_once(monkeypatch, lambda x: True)
    report = restore_raster(raster, tmp_path / "out.tif", model=model, tile=64, batch=1)
    assert state["raised"] and report.tile == 32 and report.tiles == 9 and report.events
    assert np.array_equal(read(report.output), expected)


def test_outputs_must_not_overwrite_the_input_or_each_other(tmp_path, raster, model):
    with pytest.raises(DampInputError, match="input"):
        restore_raster(raster, raster, model=model)
    with pytest.raises(DampInputError, match="different paths"):
        restore_raster(raster, tmp_path / "out.tif", model=model, routing_map=tmp_path / "out.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]
