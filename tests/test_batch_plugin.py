"""The Processing algorithm "Restore a folder of rasters" (damp:restore_folder).

Under qgis_process, as a user runs it from a shell: its local Dask workers start with the Python
that QGIS embeds (not with sys.executable), it restores every raster as damp:restore would, and a
second run keeps them. In-process, through processing.run: a raster that fails makes the algorithm
fail, naming it, after the others are done, and a cancel says what was kept."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsProcessingException

from damp_engine.tiling import restore_raster
from helpers import RecordingFeedback, linked_plugin_env, run_json, sha256, smooth_cube, tiny_model_file, write_raster

pytestmark = pytest.mark.qgis
pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The plugin linked as `make install-plugin` links it, found through QGIS_PLUGINPATH, enabled."""
    return linked_plugin_env(tmp_path_factory.mktemp("qgis_process_batch"), OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("restore_folder")


@pytest.fixture(scope="module")
def model(folder) -> Path:
    return tiny_model_file(folder / "tiny.safetensors", name="restore_folder test")


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
    from damp_engine.environment import kept_environment

    with kept_environment(), dask.config.set({TRIM_SETTING: None, PROFILE_SETTING: False}):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
            yield cluster.scheduler_address


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
    feedback = RecordingFeedback(cancel_after=0)  # the first progress comes once the first raster is done
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
