"""`make package`: the plugin ZIP installs into a fresh QGIS profile, loads under qgis_process and
restores with the engine and model it vendors (nothing from the checkout)."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from damp_engine import restore_raster
from helpers import ROOT, qgis_env, qgis_process, read_window, run_json, smooth_cube, write_raster

pytestmark = pytest.mark.qgis
PLUGINS = Path(".local") / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "python" / "plugins"
ALGORITHMS = ("restore", "upscale", "prompt", "simulate", "evaluate", "routing", "finetune",
              "simulate_restore_evaluate")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("dist") / "damp_qgis.zip"
    subprocess.run(["make", "-s", "package", f"PLUGIN_ZIP={target}"], cwd=ROOT, check=True, capture_output=True)
    return target


@pytest.fixture(scope="module")
def installed(package, tmp_path_factory) -> dict[str, str]:
    """The ZIP unpacked into a fresh profile's plugin folder and enabled the way a user does it."""
    home = tmp_path_factory.mktemp("home")
    with zipfile.ZipFile(package) as archive:
        archive.extractall(home / PLUGINS)
    env = qgis_env(home)
    enabled = qgis_process(env, "plugins", "enable", "damp_qgis")
    assert enabled.returncode == 0, enabled.stdout[-2000:] + enabled.stderr[-2000:]
    return env


def test_zip_holds_plugin_metadata_engine_and_model(package):
    names = set(zipfile.ZipFile(package).namelist())
    assert {"damp_qgis/__init__.py", "damp_qgis/metadata.txt", "damp_qgis/vendor/damp_engine/__init__.py",
            "damp_qgis/vendor/resources/icons/damp.svg",
            "damp_qgis/vendor/resources/models/simulate_restore_evaluate.model3",
            "damp_qgis/vendor/resources/models/damp_tiny.safetensors",
            "damp_qgis/vendor/resources/models/damp_tiny.json"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_shipped_model3_is_what_the_build_script_writes(tmp_path):
    built = tmp_path / "built.model3"
    done = subprocess.run([sys.executable, "scripts/build_model3.py", str(built)], cwd=ROOT, env=qgis_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert built.read_text() == (ROOT / "resources" / "models" / "simulate_restore_evaluate.model3").read_text()


def test_installed_zip_lists_the_algorithms(installed, tmp_path):
    listing = qgis_process(installed, "list", cwd=tmp_path).stdout
    assert all(f"damp:{algorithm}\t" in listing for algorithm in ALGORITHMS)


def test_installed_zip_restores_with_its_bundled_model(installed, tmp_path):
    """Run from an empty folder without the checkout on any path: engine and model come from the ZIP,
    and the raster is what the engine makes of it with that model: finite, in the input's range,
    equal to a direct `restore_raster` to float precision."""
    cube = smooth_cube(31, 40, 40)
    source = write_raster(tmp_path / "scene.tif", cube, wavelengths=np.linspace(400, 700, 31))
    result = run_json(installed, "damp:restore", cwd=tmp_path, INPUT=source, OUTPUT=tmp_path / "restored.tif")
    restored = read_window(Path(result["results"]["OUTPUT"]))
    vendored = Path(installed["HOME"]) / PLUGINS / "damp_qgis" / "vendor" / "resources" / "models"
    direct = read_window(restore_raster(source, tmp_path / "direct.tif", model=vendored / "damp_tiny.safetensors",
                                        device="cpu").output)
    span = float(cube.max() - cube.min())
    assert restored.shape == cube.shape and restored.dtype == np.float32 and np.isfinite(restored).all()
    assert cube.min() - 0.1 * span <= restored.min() and restored.max() <= cube.max() + 0.1 * span
    np.testing.assert_allclose(restored, direct, rtol=0, atol=1e-4 * span)
