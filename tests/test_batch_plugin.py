"""The Processing algorithm "Restore a folder of rasters" (damp:restore_folder).

Under qgis_process, as a user runs it from a shell: its local Dask workers start with the Python
that QGIS embeds (not with sys.executable), it restores every raster as damp:restore would, and a
second run keeps them. In-process, through processing.run: a raster that fails makes the algorithm
fail, naming it, after the others are done, and a cancel says what was kept."""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, smooth_cube, write_raster
from damp_engine.checkpoint import save_checkpoint
from damp_engine.model import DAMP, get_preset
from damp_engine.tiling import restore_raster
from plugin_support import qgis_env, run_json
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The plugin linked as `make install-plugin` links it, found through QGIS_PLUGINPATH, enabled."""
    base = tmp_path_factory.mktemp("qgis_process_batch")
    plugins = base / "plugins"
    subprocess.run(["python3", str(ROOT / "scripts" / "package_plugin.py"), "link", str(plugins)], check=True,
                   capture_output=True)
    settings = base / "home" / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text("[PythonPlugins]\ndamp_qgis=true\n")
    return qgis_env(base / "home", QGIS_PLUGINPATH=str(plugins), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("restore_folder")


@pytest.fixture(scope="module")
def model(folder) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(DAMP(get_preset("tiny")), folder / "tiny.safetensors", {"name": "restore_folder test"})


@pytest.fixture(scope="module")
def scenes(folder) -> Path:
    """Two noisy 20-band 64 x 64 rasters."""
    rng = np.random.default_rng(3)
    (folder / "scenes").mkdir()
    for i in range(2):
        cube = smooth_cube(20, 64, 64, seed=i) + rng.normal(0, 0.05, (20, 64, 64)).astype(np.float32)
        write_raster(folder / "scenes" / f"scene{i}.tif", cube)
    return folder / "scenes"


@pytest.fixture(scope="module")
def first_run(env, scenes, model, folder) -> dict:
    return run_json(env, "damp:restore_folder", INPUT=scenes, OUTPUT=folder / "restored", MODEL=model,
                    DEVICE="cpu", WORKERS=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_every_raster_is_restored_as_restore_raster_restores_it(first_run, scenes, model, folder):
    assert first_run["results"]["RESTORED"] == 2
    for scene in sorted(scenes.glob("*.tif")):
        single = restore_raster(scene, folder / f"single_{scene.name}", model=model, device="cpu").output
        assert sha256(folder / "restored" / scene.name) == sha256(single)


def test_feedback_names_each_raster_and_the_manifest_lists_them(first_run, scenes, folder):
    info = "\n".join(first_run["log"]["info"])
    assert all(f"done: {scene}" in info for scene in scenes.glob("*.tif"))
    records = [json.loads(line) for line in Path(first_run["results"]["MANIFEST"]).read_text().splitlines()]
    assert sorted(Path(r["scene"]).name for r in records if r["state"] == "done") == ["scene0.tif", "scene1.tif"]


def test_a_second_run_keeps_the_restored_rasters(first_run, env, scenes, model, folder):
    again = run_json(env, "damp:restore_folder", INPUT=scenes, OUTPUT=folder / "restored", MODEL=model,
                     DEVICE="cpu", WORKERS=1)
    assert (again["results"]["RESTORED"], again["results"]["SKIPPED"]) == (0, 2)


# --- in-process, on one worker process shared by the tests ------------------------------------


@pytest.fixture(scope="module")
def scheduler():
    import dask
    from distributed import LocalCluster

    from damp_engine.batch_cluster import PROFILE_SETTING, TRIM_SETTING

    with dask.config.set({TRIM_SETTING: None, PROFILE_SETTING: False}):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
            yield cluster.scheduler_address


class CancelAfterFirstRaster(QgsProcessingFeedback):
    """Asks to cancel once the first raster is done; keeps the warnings and errors reported."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def setProgress(self, progress: float) -> None:  # noqa: N802 (QGIS API)
        super().setProgress(progress)
        if progress > 0:
            self.cancel()

    def pushWarning(self, warning: str) -> None:  # noqa: N802 (QGIS API)
        self.warnings.append(warning)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803 (QGIS API)
        self.errors.append(error)


def test_a_raster_that_fails_fails_the_algorithm_by_name(processing, scheduler, scenes, model, folder):
    (folder / "mixed").mkdir()
    (folder / "mixed" / "scene0.tif").write_bytes((scenes / "scene0.tif").read_bytes())
    (folder / "mixed" / "cut.tif").write_bytes((scenes / "scene1.tif").read_bytes()[:400])
    with pytest.raises(QgsProcessingException, match="cut.tif"):
        processing.run("damp:restore_folder", {"INPUT": str(folder / "mixed"), "OUTPUT": str(folder / "mixed_out"),
                                               "MODEL": str(model), "DEVICE": "cpu", "SCHEDULER": scheduler,
                                               "RETRIES": 0})
    assert (folder / "mixed_out" / "scene0.tif").is_file()


def test_cancel_ends_as_cancelled_and_says_the_finished_rasters_are_kept(processing, scheduler, scenes, model,
                                                                          folder):
    feedback = CancelAfterFirstRaster()
    results = processing.run("damp:restore_folder", {"INPUT": str(scenes), "OUTPUT": str(folder / "cancelled"),
                                                     "MODEL": str(model), "DEVICE": "cpu", "SCHEDULER": scheduler},
                             feedback=feedback)
    assert results["OUTPUT"] == str(folder / "cancelled") and not feedback.errors
    assert any("complete and kept" in warning for warning in feedback.warnings), feedback.warnings
    assert not [p for p in (folder / "cancelled").iterdir() if p.name.startswith(".")]


def test_every_parameter_is_documented_and_the_icon_exists(processing):
    alg = QgsApplication.processingRegistry().algorithmById("damp:restore_folder")
    assert not [p.name() for p in alg.parameterDefinitions() if not p.help()]
    assert "arXiv:2512.20251" in alg.shortHelpString() and Path(alg.svgIconPath()).is_file()
