"""The `damp` command: outputs, and bad input answered by one sentence and exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import smooth_cube, write_raster

from damp_engine.cli import main
from damp_engine.raster import RasterReader, open_raster


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clear_error(code: int, err: str) -> None:
    assert code == 2
    assert err.startswith("damp: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_prompt_json_has_six_metrics_and_size(capsys, sample_raster):
    code, out, _ = run(capsys, "prompt", sample_raster, "--json")
    result = json.loads(out)
    assert code == 0
    assert set(result) >= {"hfer", "stu", "scm", "scs", "gstd", "scc", "bands", "width", "height"}
    assert (result["bands"], result["width"], result["height"]) == (224, 64, 96)
    assert all(np.isfinite(result[k]) for k in ("hfer", "stu", "scm", "scs", "gstd", "scc"))


def test_degrade_then_evaluate(capsys, tmp_path, sample_raster):
    noisy = tmp_path / "noisy.tif"
    code, _, _ = run(capsys, "degrade", sample_raster, noisy, "--kind", "gaussian_noise",
                     "--param", "sigma=30", "--seed", "3")
    assert code == 0
    info, src = open_raster(noisy), open_raster(sample_raster)
    assert info.geotransform == src.geotransform and info.wavelengths == pytest.approx(src.wavelengths, abs=1e-3)
    assert json.loads(info.metadata["DAMP_DEGRADATION"])["params"]["sigma"] == 30
    code, out, _ = run(capsys, "evaluate", sample_raster, noisy, "--json")
    scores = json.loads(out)
    assert code == 0 and 15 < scores["psnr"] < 30 and scores["sam"] > 1


def test_degrade_is_reproducible(capsys, tmp_path, sample_raster):
    for name in ("a.tif", "b.tif"):
        run(capsys, "degrade", sample_raster, tmp_path / name, "--kind", "stripes", "--seed", "7")
    a, b = (open_raster(tmp_path / n) for n in ("a.tif", "b.tif"))
    with RasterReader(tmp_path / "a.tif") as ra, RasterReader(tmp_path / "b.tif") as rb:
        np.testing.assert_array_equal(ra.read_all()[0], rb.read_all()[0])
    assert a.metadata["DAMP_DEGRADATION"] == b.metadata["DAMP_DEGRADATION"]


def test_missing_file(capsys, tmp_path):
    assert_clear_error(*run(capsys, "prompt", tmp_path / "missing.tif")[::2])


def test_file_gdal_cannot_open(capsys, tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"\x00garbage")
    assert_clear_error(*run(capsys, "prompt", bad)[::2])


def test_one_band_raster_for_prompt(capsys, tmp_path):
    path = write_raster(tmp_path / "one.tif", smooth_cube(1, 32, 32))
    code, _, err = run(capsys, "prompt", path)
    assert_clear_error(code, err)
    assert "at least 3" in err


def test_evaluate_shapes_differ(capsys, tmp_path):
    a = write_raster(tmp_path / "a.tif", smooth_cube(5, 32, 32))
    b = write_raster(tmp_path / "b.tif", smooth_cube(5, 32, 30))
    code, _, err = run(capsys, "evaluate", a, b)
    assert_clear_error(code, err)
    assert "shape" in err


def test_all_nodata_raster(capsys, tmp_path):
    path = write_raster(tmp_path / "empty.tif", np.full((5, 32, 32), -9999, np.float32), nodata=-9999)
    code, _, err = run(capsys, "prompt", path)
    assert_clear_error(code, err)
    assert "no valid pixels" in err


def test_all_nan_raster(capsys, tmp_path):
    path = write_raster(tmp_path / "nan.tif", np.full((5, 32, 32), np.nan, np.float32))
    assert_clear_error(*run(capsys, "prompt", path)[::2])


def test_nan_and_inf_pixels_are_treated_as_nodata(capsys, tmp_path):
    cube = smooth_cube(8, 40, 40)
    cube[:, 3, 4], cube[2, 10, 10] = np.nan, np.inf
    path = write_raster(tmp_path / "holes.tif", cube)
    code, out, _ = run(capsys, "prompt", path, "--json")
    assert code == 0 and all(np.isfinite(v) for v in json.loads(out).values())


def test_output_equal_to_input_leaves_input_untouched(capsys, tmp_path, sample_raster):
    copy = tmp_path / "scene.tif"
    copy.write_bytes(sample_raster.read_bytes())
    before = copy.read_bytes()
    code, _, err = run(capsys, "degrade", copy, copy, "--kind", "gaussian_noise")
    assert_clear_error(code, err)
    assert copy.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["scene.tif"]


def test_bad_degradation_kind_leaves_no_file(capsys, tmp_path, sample_raster):
    code, _, err = run(capsys, "degrade", sample_raster, tmp_path / "out.tif", "--kind", "sharpen")
    assert_clear_error(code, err)
    assert list(tmp_path.iterdir()) == []


def test_console_script_help_has_an_example():
    result = subprocess.run([sys.executable, "-m", "damp_engine.cli", "degrade", "--help"],
                            capture_output=True, text=True, check=True)
    assert "example:" in result.stdout and "damp degrade" in result.stdout


def test_restore_writes_a_georeferenced_raster_and_report(capsys, tmp_path, sample_raster):
    out, report = tmp_path / "restored.tif", tmp_path / "report.json"
    code, stdout, _ = run(capsys, "restore", sample_raster, out, "--tile", "64", "--report", report)
    info, src = open_raster(out), open_raster(sample_raster)
    assert code == 0 and "damp_tiny" in stdout
    assert info.shape == src.shape and info.geotransform == src.geotransform and info.dtype == "int16"
    assert json.loads(report.read_text())["tiles"] == 2


def test_restore_with_tile_prompts_routes_each_tile_by_its_own(capsys, tmp_path, sample_raster):
    scene, own = tmp_path / "scene.tif", tmp_path / "own.tif"
    assert run(capsys, "restore", sample_raster, scene, "--tile", "32")[0] == 0
    assert run(capsys, "restore", sample_raster, own, "--tile", "32", "--tile-prompts")[0] == 0
    with RasterReader(scene) as a, RasterReader(own) as b:
        assert not np.array_equal(a.read_all()[0], b.read_all()[0])


def test_upscale_doubles_the_grid(capsys, tmp_path, sample_raster):
    out = tmp_path / "x2.tif"
    code, _, _ = run(capsys, "upscale", sample_raster, out, "--factor", "2", "--tile", "128")
    info, src = open_raster(out), open_raster(sample_raster)
    assert code == 0 and (info.width, info.height) == (2 * src.width, 2 * src.height)
    assert info.geotransform[1] == src.geotransform[1] / 2
