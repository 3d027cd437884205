"""Batch restoration on a Dask cluster: every scene restored exactly as restore_raster restores it,
the manifest says what happened, a rerun does only what is missing, a corrupt scene or a killed
worker costs a retry and never the other scenes, and a cancel keeps what is finished.

One LocalCluster of 2 single-threaded worker processes serves the module, set up as the cluster
`restore_batch` embeds: its scheduler re-runs no task whose worker died (the batch does, and records
it), and its workers run without Dask's malloc trimming and profiler."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from damp_engine.batch import restore_batch
from damp_engine.batch_cluster import PROFILE_SETTING, TRIM_SETTING
from damp_engine.batch_scenes import SceneJob, collect_scenes, output_name
from damp_engine.batch_worker import restore_scene, scene_prompt
from damp_engine.environment import kept_environment
from damp_engine.cli import main
from damp_engine.errors import DampCancelled, DampInputError
from damp_engine.raster import streaming_cache_bytes
from damp_engine.tiling import restore_raster
from helpers import sha256, smooth_cube, tiny_model_file, write_raster

BANDS, SIDE, SCENES = 20, 64, 4
SETTINGS = {"device": "cpu"}


@pytest.fixture(scope="module")
def cluster():
    dask = pytest.importorskip("dask")
    from distributed import LocalCluster

    with kept_environment(), dask.config.set({"distributed.scheduler.allowed-failures": 0, TRIM_SETTING: None,
                                              PROFILE_SETTING: False}):
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
            yield local


@pytest.fixture(scope="module")
def scheduler(cluster) -> str:
    return cluster.scheduler_address


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("batch")


@pytest.fixture(scope="module")
def model(folder) -> Path:
    return tiny_model_file(folder / "tiny.safetensors", name="batch test")


@pytest.fixture(scope="module")
def archive(folder) -> Path:
    """4 noisy 20-band 64 x 64 scenes."""
    (folder / "archive").mkdir()
    rng = np.random.default_rng(7)
    for i in range(SCENES):
        cube = smooth_cube(BANDS, SIDE, SIDE, seed=i) + rng.normal(0, 0.05, (BANDS, SIDE, SIDE)).astype(np.float32)
        write_raster(folder / "archive" / f"scene{i}.tif", cube)
    return folder / "archive"


@pytest.fixture(scope="module")
def single(folder, archive, model) -> dict:
    """Each scene restored on its own by restore_raster (one torch thread, as each worker): {name: report}."""
    (folder / "single").mkdir()
    return {p.name: restore_raster(p, folder / "single" / p.name, model=model, **SETTINGS)
            for p in sorted(archive.glob("*.tif"))}


@pytest.fixture(scope="module")
def expected(single) -> dict[str, Path]:
    """{name: the output restore_raster wrote}."""
    return {name: report.output for name, report in single.items()}


@pytest.fixture(scope="module")
def batch(folder, archive, model, scheduler):
    """The archive restored once on the cluster: (report, output folder)."""
    out = folder / "batch"
    return restore_batch([archive], out, scheduler=scheduler, model=model, **SETTINGS), out


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def hidden_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# --- same result, recorded --------------------------------------------------------------------

def test_every_scene_is_bit_identical_to_restore_raster(batch, expected):
    report, out = batch
    assert [s.state for s in report.scenes] == ["done"] * SCENES
    assert {name: sha256(out / name) for name in expected} == {name: sha256(p) for name, p in expected.items()}


def test_manifest_records_state_checksums_timings_and_prompt(batch, archive, single):
    report, out = batch
    records = {r["scene"]: r for r in manifest_lines(out / "manifest.jsonl")}
    record = records[str(archive / "scene0.tif")]
    assert record["state"] == "done" and record["attempt"] == 1
    assert record["inputs"][str(archive / "scene0.tif")]["sha256"] == sha256(archive / "scene0.tif")
    assert record["outputs"][str(out / "scene0.tif")]["sha256"] == sha256(out / "scene0.tif")
    assert record["seconds"] > 0 and record["restore"]["tiles"] == 1
    assert record["prompt"] and record["prompt"] == scene_prompt(single["scene0.tif"].to_dict())


def test_an_embedded_cluster_leaves_the_environment_as_it_was(folder, archive, model):
    before = dict(os.environ)
    report = restore_batch([archive / "scene0.tif"], folder / "embedded", workers=1, model=model, **SETTINGS)
    assert report.count("done") == 1
    assert dict(os.environ) == before  # Dask's nannies set OMP_NUM_THREADS=1 here while they run


def test_two_workers_share_the_scenes(batch):
    _, out = batch
    assert len({r["worker"] for r in manifest_lines(out / "manifest.jsonl")}) == 2


def test_each_worker_keeps_its_model_for_the_next_scenes(batch, folder, archive, model, cluster):
    from distributed import Client

    def cached_model() -> int:
        from damp_engine.batch_worker import _MODELS

        return id(next(iter(_MODELS.values()))) if _MODELS else 0

    with Client(cluster) as client:
        before = client.run(cached_model)
        restore_batch([archive / "scene0.tif", archive / "scene1.tif"], folder / "again",
                      scheduler=cluster.scheduler_address, model=model, **SETTINGS)
        after = client.run(cached_model)
    assert all(after[w] == model_id for w, model_id in before.items() if model_id and w in after)


# --- reruns -----------------------------------------------------------------------------------

def test_a_rerun_skips_every_complete_scene_and_touches_nothing(batch, archive, model, scheduler):
    _, out = batch
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    again = restore_batch([archive], out, scheduler=scheduler, model=model, **SETTINGS)
    assert [s.state for s in again.scenes] == ["skipped"] * SCENES
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == before


def test_a_rerun_redoes_a_scene_whose_output_is_gone_or_changed(folder, archive, model, scheduler):
    out = folder / "damaged"
    restore_batch([archive], out, scheduler=scheduler, model=model, **SETTINGS)
    (out / "scene1.tif").unlink()
    with open(out / "scene2.tif", "r+b") as fh:  # same size, other content, other time
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\0\0\0\0")
    again = restore_batch([archive], out, scheduler=scheduler, model=model, **SETTINGS)
    assert [s.state for s in again.scenes] == ["skipped", "done", "done", "skipped"]


def test_other_settings_redo_every_scene(folder, archive, model, scheduler):
    out = folder / "settings"
    restore_batch([archive / "scene0.tif"], out, scheduler=scheduler, model=model, **SETTINGS)
    again = restore_batch([archive / "scene0.tif"], out, scheduler=scheduler, model=model,
                          **{**SETTINGS, "tile": 64})
    assert [s.state for s in again.scenes] == ["done"]


def test_after_a_cancel_a_rerun_restores_only_the_missing_scenes(folder, archive, model, scheduler):
    out, finished = folder / "cancelled", []
    with pytest.raises(DampCancelled, match="a rerun restores the rest"):
        restore_batch([archive], out, scheduler=scheduler, model=model, cancelled=lambda: bool(finished),
                      on_scene=lambda result, done, total: finished.append(result.scene), **SETTINGS)
    again = restore_batch([archive], out, scheduler=scheduler, model=model, **SETTINGS)
    kept = {s.scene for s in again.scenes if s.state == "skipped"}
    assert kept == set(finished) and all(s.state in ("skipped", "done") for s in again.scenes)


def test_a_cancel_leaves_only_complete_outputs(folder, archive, model, scheduler):
    out = folder / "cancelled_files"
    with pytest.raises(DampCancelled):
        restore_batch([archive], out, scheduler=scheduler, model=model, cancelled=lambda: True, **SETTINGS)
    done = {Path(r["output"]).name for r in manifest_lines(out / "manifest.jsonl") if r["state"] == "done"}
    assert {p.name for p in out.glob("*.tif")} == done and not hidden_files(out)


# --- failures ---------------------------------------------------------------------------------

def test_a_corrupt_scene_is_retried_then_reported_while_the_others_finish(folder, archive, model, scheduler):
    (folder / "mixed").mkdir()
    (folder / "mixed" / "broken.tif").write_bytes(b"II*\0 this is not a GeoTIFF")
    out = folder / "mixed_out"
    report = restore_batch([archive / "scene0.tif", folder / "mixed" / "broken.tif", archive / "scene1.tif"], out,
                           scheduler=scheduler, model=model, retries=1, **SETTINGS)
    assert [s.state for s in report.scenes] == ["done", "failed", "done"]
    (failure,) = report.failed
    assert failure.attempts == 2 and "broken.tif" in report.failure_lines()[0]
    attempts = [(r["attempt"], r["final"]) for r in manifest_lines(out / "manifest.jsonl") if r["state"] == "failed"]
    assert attempts == [(1, False), (2, True)]


def die_on_first_call(marker: str, name: str) -> None:
    """In a worker: make the first restore of scene `name` (across all workers) kill its process."""
    import damp_engine.tiling as tiling

    original = getattr(tiling, "_unpatched_restore_raster", tiling.restore_raster)

    def dying(src, dst, **options):
        if Path(src).name == name and not Path(marker).exists():
            Path(marker).touch()
            os._exit(1)
        return original(src, dst, **options)

    tiling._unpatched_restore_raster = original
    tiling.restore_raster = dying


def test_a_scene_whose_worker_is_killed_is_retried_and_completes(folder, archive, model, cluster, expected):
    from distributed import Client

    with Client(cluster) as client:
        client.run(die_on_first_call, str(folder / "killed.marker"), "scene3.tif")
    out = folder / "killed"
    report = restore_batch([archive / "scene0.tif", archive / "scene3.tif"], out, scheduler=cluster.scheduler_address,
                           model=model, **SETTINGS)
    assert (folder / "killed.marker").exists()
    assert [(s.state, s.attempts) for s in report.scenes] == [("done", 1), ("done", 2)]
    records = [(r["state"], r["attempt"]) for r in manifest_lines(out / "manifest.jsonl")
               if r["scene"].endswith("scene3.tif")]
    assert records == [("failed", 1), ("done", 2)]
    assert sha256(out / "scene3.tif") == sha256(expected["scene3.tif"]) and not hidden_files(out)
    with Client(cluster) as client:
        client.wait_for_workers(2)  # the killed worker is back for the other tests


# --- which scenes -----------------------------------------------------------------------------

def test_inputs_are_rasters_folders_globs_lists_and_gdal_paths(archive, tmp_path):
    listing = tmp_path / "scenes.txt"
    relative = os.path.relpath(archive / "scene2.tif", tmp_path)
    listing.write_text(f"# two scenes\n{archive / 'scene1.tif'}\n\n{relative}\n")
    found = collect_scenes([archive / "scene0.tif", str(archive / "scene[01].tif"), listing, archive,
                            "/vsicurl/https://example.org/enmap.tif"])
    names = [Path(s).name for s in found]
    assert names == ["scene0.tif", "scene1.tif", "scene2.tif", "scene3.tif", "enmap.tif"]


def test_outputs_keep_the_input_name_or_become_geotiff():
    assert [output_name(s) for s in ("/a/x.bsq", "/a/y.vrt", "/vsicurl/https://h/z.tif?sig=1")] == \
        ["x.bsq", "y.tif", "z.tif"]


def test_two_scenes_with_one_file_name_are_refused(archive, tmp_path, model):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "scene0.tif").write_bytes((archive / "scene0.tif").read_bytes())
    with pytest.raises(DampInputError, match="would both be written"):
        restore_batch([archive / "scene0.tif", tmp_path / "other" / "scene0.tif"], tmp_path / "out", model=model)


def test_the_input_folder_is_refused_as_output(archive, model):
    with pytest.raises(DampInputError, match="holds the input"):
        restore_batch([archive], archive, model=model)


# --- the command ------------------------------------------------------------------------------

def test_command_exits_non_zero_naming_the_failed_scene(folder, archive, model, scheduler, capsys):
    (folder / "cli_in").mkdir()
    (folder / "cli_in" / "scene0.tif").write_bytes((archive / "scene0.tif").read_bytes())
    (folder / "cli_in" / "truncated.tif").write_bytes((archive / "scene1.tif").read_bytes()[:300])
    code = main(["restore-batch", str(folder / "cli_in"), "--out", str(folder / "cli_out"), "--model", str(model),
                 "--scheduler", scheduler, "--retries", "0", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "failed: " + str(folder / "cli_in" / "truncated.tif") in err
    assert (folder / "cli_out" / "scene0.tif").is_file()


def test_command_runs_its_own_local_cluster_and_prints_the_dashboard(archive, model, tmp_path, capsys):
    code = main(["restore-batch", str(archive / "scene0.tif"), "--out", str(tmp_path), "--workers", "1",
                 "--model", str(model), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0 and "1 done" in captured.out and "dashboard http" in captured.err


def test_command_refuses_bad_settings_before_starting_a_cluster(archive, tmp_path, capsys):
    code = main(["restore-batch", str(archive), "--out", str(tmp_path), "--tile", "8"])
    assert code == 2 and "tile size" in capsys.readouterr().err



def test_a_worker_sizes_gdal_s_block_cache_to_each_scene(tmp_path, model, monkeypatch):
    """A wide scene needs more than GDAL's 64 MB to read each block once; the worker gives it what
    `damp restore` would (two rows of blocks plus the halo's rows)."""
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    scene = write_raster(tmp_path / "wide.tif", smooth_cube(100, 32, 1800, seed=3))
    job = SceneJob(scene=str(scene), output=str(tmp_path / "out.tif"), model=str(model), options=SETTINGS, threads=1)
    before = gdal.GetCacheMax()
    try:
        restore_scene(job)
        assert gdal.GetCacheMax() == streaming_cache_bytes(scene) > 64 * 1024 * 1024
    finally:
        gdal.SetCacheMax(before)
