"""The plugin under qgis_process, as a user runs it from a shell: a throwaway HOME, the plugin found
through QGIS_PLUGINPATH and enabled, torch from the project's venv, JSON results."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from helpers import ROOT, SAMPLE, linked_plugin_env, run_json, smooth_cube, tiny_model_file, write_raster

pytestmark = pytest.mark.qgis
MODEL3 = ROOT / "resources" / "models" / "simulate_restore_evaluate.model3"
WAVELENGTHS = np.linspace(400.0, 700.0, 31)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The plugin linked as `make install-plugin` links it, found through QGIS_PLUGINPATH, enabled in the profile."""
    return linked_plugin_env(tmp_path_factory.mktemp("qgis_process"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qp_data")


@pytest.fixture(scope="module")
def clean(folder) -> Path:
    return write_raster(folder / "clean.tif", smooth_cube(31, 40, 40), wavelengths=WAVELENGTHS)


@pytest.fixture(scope="module")
def model(folder) -> Path:
    return tiny_model_file(folder / "tiny.safetensors", name="qgis_process test")


def test_restore_with_only_input_and_output(env, clean, model, tmp_path):
    """The README's command; the default model is found through the engine (here DAMP_MODEL)."""
    out = tmp_path / "restored.tif"
    result = run_json({**env, "DAMP_MODEL": str(model)}, "damp:restore", INPUT=clean, OUTPUT=out)
    assert result["results"]["OUTPUT"] == str(out)
    info = gdal.Info(str(out), format="json")
    assert (len(info["bands"]), *info["size"]) == (31, 40, 40)
    assert any("on the CPU" in line for line in result["log"]["info"])


def example_outputs(folder: Path) -> dict[str, Path]:
    """The four outputs qgis_process 3.22 asks of the example model."""
    return {"simulate:degraded": folder / "degraded.tif", "restore:restored": folder / "restored.tif",
            "evaluate_degraded:scores_degraded": folder / "before.csv",
            "evaluate_restored:scores_restored": folder / "after.csv"}


def rows(path: Path) -> dict[str, dict]:
    """The rows of a quality table by their part ("whole raster", "degraded part")."""
    with open(path, newline="") as fh:
        return {row["part"]: row for row in csv.DictReader(fh)}


def test_the_shipped_model3_runs_simulate_restore_evaluate(env, clean, model, tmp_path):
    outputs = example_outputs(tmp_path)
    result = run_json(env, str(MODEL3), clean=clean, kind="gaussian_noise", parameters="sigma=30",
                      model=model, **outputs)
    assert result["results"] == {key: str(path) for key, path in outputs.items()}
    before = rows(tmp_path / "before.csv")
    assert set(before) == {"whole raster"}  # noise changes every value: no separate part
    assert before["whole raster"]["raster"] == str(tmp_path / "degraded.tif")
    assert float(before["whole raster"]["psnr"]) > 0


def test_the_example_with_its_defaults_restores_the_sample_better_than_it_was_degraded(env, tmp_path):
    """The bundled model, the bundled EnMAP sample, every default: the restoration clearly helps."""
    outputs = example_outputs(tmp_path)
    run_json(env, "damp:simulate_restore_evaluate", clean=SAMPLE, **outputs)
    before, after = rows(tmp_path / "before.csv")["whole raster"], rows(tmp_path / "after.csv")["whole raster"]
    assert before["kind"] == "gaussian_noise"
    assert float(after["psnr"]) > float(before["psnr"]) + 5
    assert float(after["ssim"]) > float(before["ssim"])
    assert float(after["sam"]) < float(before["sam"])


def test_lost_bands_are_scored_on_their_own_before_and_after(env, tmp_path):
    """Band loss leaves 9 bands in 10 untouched: the whole-raster "before" flatters the degraded
    raster, the degraded-part row shows the lost bands coming back."""
    outputs = example_outputs(tmp_path)
    run_json(env, "damp:simulate_restore_evaluate", clean=SAMPLE, kind="band_loss", **outputs)
    before, after = rows(tmp_path / "before.csv"), rows(tmp_path / "after.csv")
    assert set(before) == set(after) == {"whole raster", "degraded part"}
    assert float(before["degraded part"]["psnr"]) < float(before["whole raster"]["psnr"]) - 20
    assert float(after["degraded part"]["psnr"]) > float(before["degraded part"]["psnr"]) + 5
