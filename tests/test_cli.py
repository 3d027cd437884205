"""The `damp` command: outputs, and bad input answered by one sentence and exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import read_window, smooth_cube, write_raster

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
    result = json.loads(out)
    assert code == 0 and all(np.isfinite(v) for k, v in result.items() if k != "reading")
    assert result["reading"]["top"] in result["reading"]["families"]


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
    """--tile-prompts reaches the engine: the run's mean gates differ from the scene-routed run's
    (the restored Int16 values may not: the bundled model moves them by less than one step here)."""
    reports = []
    for name, extra in (("scene", []), ("own", ["--tile-prompts"])):
        report = tmp_path / f"{name}.json"
        assert run(capsys, "restore", sample_raster, tmp_path / f"{name}.tif", "--tile", "32",
                   "--report", report, *extra)[0] == 0
        reports.append(json.loads(report.read_text()))
    scene, own = reports
    assert own["routing"] != scene["routing"]
    assert len(own["prompt"]) == 6


def test_upscale_doubles_the_grid(capsys, tmp_path, sample_raster):
    out = tmp_path / "x2.tif"
    code, _, _ = run(capsys, "upscale", sample_raster, out, "--factor", "2", "--tile", "128")
    info, src = open_raster(out), open_raster(sample_raster)
    assert code == 0 and (info.width, info.height) == (2 * src.width, 2 * src.height)
    assert info.geotransform[1] == src.geotransform[1] / 2


# --- evaluate: the field's convention, stated in the output ---------------------------------------

@pytest.fixture(scope="module")
def cave_pair(tmp_path_factory, shared_data):
    """A 31-band 16-bit CAVE crop and a noisy float32 copy of it, as files, with the values as read back."""
    folder = tmp_path_factory.mktemp("cave")
    counts = read_window(shared_data / "test" / "cave_balloons.tif", 200, 180, 64, 48)
    noisy = counts + np.random.default_rng(3).normal(0, 800, counts.shape)
    ref = write_raster(folder / "ref.tif", counts.astype(np.uint16))
    test = write_raster(folder / "test.tif", noisy.astype(np.float32))
    return ref, test, counts.astype(np.float64), noisy.astype(np.float32).astype(np.float64)


def test_evaluate_of_a_raster_against_itself_scores_the_cap(capsys, cave_pair):
    ref = cave_pair[0]
    code, out, _ = run(capsys, "evaluate", ref, ref, "--json")
    scores = json.loads(out)
    assert code == 0
    assert (scores["psnr"], scores["ssim"], scores["sam"], scores["ergas"]) == (100.0, 1.0, 0.0, 0.0)


def test_evaluate_psnr_and_ssim_equal_scikit_image_per_band_with_the_reference_peak(capsys, cave_pair):
    from skimage import metrics

    ref, test, r, e = cave_pair
    peak = r.max()
    psnr = np.mean([metrics.peak_signal_noise_ratio(a, b, data_range=peak) for a, b in zip(r, e)])
    ssim = np.mean([metrics.structural_similarity(a, b, data_range=peak) for a, b in zip(r, e)])
    scores = json.loads(run(capsys, "evaluate", ref, test, "--json")[1])
    assert scores["peak"] == peak
    assert scores["psnr"] == pytest.approx(psnr, abs=1e-9)
    assert scores["ssim"] == pytest.approx(ssim, abs=1e-9)


def test_evaluate_data_range_sets_the_peak(capsys, cave_pair):
    from skimage import metrics

    ref, test, r, e = cave_pair
    psnr = np.mean([metrics.peak_signal_noise_ratio(a, b, data_range=65535) for a, b in zip(r, e)])
    scores = json.loads(run(capsys, "evaluate", ref, test, "--json", "--data-range", "65535")[1])
    assert scores["peak"] == 65535 and scores["psnr"] == pytest.approx(psnr, abs=1e-9)


def test_evaluate_does_not_clip_the_test_only(capsys, tmp_path):
    """A test twice as bright as its reference is scored as twice as bright, not cut at the reference's peak."""
    cube = smooth_cube(5, 32, 32)
    ref = write_raster(tmp_path / "ref.tif", cube)
    bright = write_raster(tmp_path / "bright.tif", 2 * cube)
    scores = json.loads(run(capsys, "evaluate", ref, bright, "--json")[1])
    mse = ((cube.astype(np.float64) / cube.max()) ** 2).mean(axis=(1, 2))  # (2c - c)² / peak²
    assert scores["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), abs=1e-6)


def test_evaluate_states_its_convention_in_text_and_json(capsys, cave_pair):
    ref, test = cave_pair[:2]
    text = run(capsys, "evaluate", ref, test)[1]
    assert "Peak" in text and "reference's maximum" in text and "neither clipped" in text
    convention = json.loads(run(capsys, "evaluate", ref, test, "--json")[1])["convention"]
    assert "neither clipped" in convention


def test_evaluate_refuses_a_data_range_that_is_not_positive(capsys, cave_pair):
    code, _, err = run(capsys, "evaluate", cave_pair[0], cave_pair[1], "--data-range", "0")
    assert_clear_error(code, err)
    assert "positive number" in err


def test_evaluate_of_a_truncated_raster_is_one_sentence(capsys, tmp_path, cave_pair):
    ref = cave_pair[0]
    cut = tmp_path / "cut.tif"
    cut.write_bytes(ref.read_bytes()[: ref.stat().st_size // 2])
    code, _, err = run(capsys, "evaluate", ref, cut)
    assert_clear_error(code, err)
    assert "cut.tif" in err and "damaged" in err


# --- settings bounds and the error paths of main ------------------------------------------------

@pytest.mark.parametrize("halo", ["-1", "513"])
def test_halo_outside_the_bounds_qgis_uses_is_refused(capsys, tmp_path, sample_raster, halo):
    from damp_engine.limits import MAX_HALO

    code, _, err = run(capsys, "restore", sample_raster, tmp_path / "out.tif", "--halo", halo)
    assert_clear_error(code, err)
    assert f"0 to {MAX_HALO}" in err
    assert list(tmp_path.iterdir()) == []


def test_halo_bounds_are_in_the_help(capsys):
    from damp_engine.limits import MAX_HALO

    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    assert f"0 to {MAX_HALO}" in " ".join(capsys.readouterr().out.split())


def test_sigterm_unwinds_like_ctrl_c_and_restores_the_handler(capsys, monkeypatch, sample_raster):
    import os
    import signal

    import damp_engine.cli as cli

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "cmd_prompt", killed)
    code, _, err = run(capsys, "prompt", sample_raster)
    assert code == 143 and err == "damp: terminated; no output was written.\n"
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_unexpected_error_is_one_line_without_a_traceback(capsys, monkeypatch, sample_raster):
    import damp_engine.cli as cli

    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_prompt", broken)
    monkeypatch.delenv("DAMP_TRACEBACK", raising=False)
    code, _, err = run(capsys, "prompt", sample_raster)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "internal error: ZeroDivisionError" in err and "DAMP_TRACEBACK=1" in err
