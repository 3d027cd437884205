"""Bad input, as a new user gives it, through `damp` and through the Processing algorithms: every
case is refused with one sentence that says what is wrong (exit code 2 / QgsProcessingException,
no traceback), and the folder is exactly as it was: no output, no hidden temporary file, inputs
and any previous file at an output path byte for byte unchanged.

Each case builds its own files in an empty folder and returns the command line (or the
algorithm and its parameters) and a phrase the sentence must contain.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, smooth_cube, write_raster

from damp_engine.cli import main

BANDS, SIDE = 16, 40


# --- building the files of a case -----------------------------------------------------------

def scene(folder: Path, name: str = "scene.tif", **kwargs) -> Path:
    return write_raster(folder / name, smooth_cube(BANDS, SIDE, SIDE), **kwargs)


def truncated(folder: Path, name: str = "cut.tif") -> Path:
    """A GeoTIFF whose header is intact but whose pixel data stops half-way (an interrupted copy)."""
    whole = scene(folder, "whole.tif").read_bytes()
    (folder / "whole.tif").unlink()
    path = folder / name
    path.write_bytes(whole[: len(whole) // 2])
    return path


def pickled_model(folder: Path, name: str = "model.pt") -> Path:
    """A pickled file of the kind torch.save writes, which must never be loaded."""
    path = folder / name
    path.write_bytes(pickle.dumps({"state_dict": {"w": [1.0, 2.0]}}))
    return path


def folder_named(folder: Path, name: str) -> Path:
    (folder / name).mkdir()
    return folder / name


def text_file(folder: Path, name: str, text: str = "my notes, not a raster") -> Path:
    (folder / name).write_text(text)
    return folder / name


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (hidden ones included) with a hash of its bytes ("dir" for folders)."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        entries[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


# --- the command line --------------------------------------------------------------------------

def restore(f: Path, *extra) -> list:
    return ["restore", scene(f), f / "restored.tif", "--tile", "32", "--device", "cpu", *extra]


CLI_CASES = {
    # the cases of issue 12
    "restore output is a folder": (lambda f: ["restore", scene(f), folder_named(f, "out.tif")], "is a folder"),
    "upscale output is a folder": (lambda f: ["upscale", scene(f), folder_named(f, "x2.tif"), "--factor", "2"],
                                   "is a folder"),
    "restore output is a text file": (lambda f: ["restore", scene(f), text_file(f, "out.tif")], "not a raster"),
    "degrade output is a text file": (lambda f: ["degrade", scene(f), text_file(f, "noisy.tif"), "--kind",
                                                 "stripes"], "not a raster"),
    "prompt of a truncated GeoTIFF": (lambda f: ["prompt", truncated(f)], "damaged"),
    "restore of a truncated GeoTIFF": (lambda f: ["restore", truncated(f), f / "restored.tif", "--tile", "32",
                                                  "--device", "cpu"], "damaged"),
    "upscale of a truncated GeoTIFF": (lambda f: ["upscale", truncated(f), f / "x2.tif", "--factor", "2",
                                                  "--tile", "32", "--device", "cpu"], "damaged"),
    "evaluate a truncated test": (lambda f: ["evaluate", scene(f), truncated(f)], "damaged"),
    "evaluate a truncated reference": (lambda f: ["evaluate", truncated(f), scene(f)], "damaged"),
    "degrade a truncated GeoTIFF": (lambda f: ["degrade", truncated(f), f / "noisy.tif", "--kind", "stripes"],
                                    "damaged"),
    "report is a folder": (lambda f: restore(f, "--report", folder_named(f, "report")), "is a folder"),
    "routing map is a text file": (lambda f: restore(f, "--routing-map", text_file(f, "routing.tif")),
                                   "not a raster"),
    "halo above the bound": (lambda f: restore(f, "--halo", "513"), "0 to 512"),
    "halo below the bound": (lambda f: restore(f, "--halo", "-1"), "0 to 512"),
    "pickled model": (lambda f: restore(f, "--model", pickled_model(f)), "pickled"),
    # cases that were already handled
    "missing input": (lambda f: ["prompt", f / "missing.tif"], "not found"),
    "input is a folder": (lambda f: ["prompt", folder_named(f, "cube.tif")], "folder"),
    "input is a text file": (lambda f: ["prompt", text_file(f, "cube.tif")], "cannot open"),
    "input is a vector file": (lambda f: ["prompt", text_file(f, "points.geojson", '{"type": "FeatureCollection", '
                                                        '"features": []}')], "raster"),
    "one-band raster": (lambda f: ["prompt", write_raster(f / "one.tif", smooth_cube(1, SIDE, SIDE))], "at least 3"),
    "two-band raster": (lambda f: ["restore", write_raster(f / "two.tif", smooth_cube(2, SIDE, SIDE)),
                                   f / "restored.tif"], "at least 3"),
    "all-NaN raster": (lambda f: ["prompt", write_raster(f / "nan.tif", np.full((BANDS, SIDE, SIDE), np.nan,
                                                                                np.float32))], "valid"),
    "all-nodata raster": (lambda f: ["prompt", write_raster(f / "nodata.tif", np.full((BANDS, SIDE, SIDE), -9999,
                                                                                      np.float32), nodata=-9999)],
                          "valid"),
    "output is the input": (lambda f: ["degrade", scene(f), f / "scene.tif", "--kind", "stripes"], "input"),
    "restore output is the input": (lambda f: ["restore", scene(f), f / "scene.tif"], "input"),
    "output folder missing": (lambda f: ["restore", scene(f), f / "nope" / "restored.tif"], "does not exist"),
    "output extension unknown": (lambda f: ["restore", scene(f), f / "restored.xyz"], ".tif"),
    "report and output are one file": (lambda f: restore(f, "--report", f / "restored.tif"), "distinct"),
    "tile too small": (lambda f: restore(f, "--tile", "8"), "tile size"),
    "batch zero": (lambda f: restore(f, "--batch", "0"), "batch"),
    "bad-band list unreadable": (lambda f: restore(f, "--bad-bands", "one,two"), "band numbers"),
    "missing model": (lambda f: restore(f, "--model", f / "gone.safetensors"), "No model file"),
    "evaluate shapes differ": (lambda f: ["evaluate", scene(f), write_raster(f / "small.tif",
                                                                             smooth_cube(BANDS, 30, 30))], "shape"),
    "evaluate data range zero": (lambda f: ["evaluate", scene(f), scene(f, "b.tif"), "--data-range", "0"],
                                 "positive number"),
    "degradation kind unknown": (lambda f: ["degrade", scene(f), f / "noisy.tif", "--kind", "sharpen"], "sharpen"),
}


def assert_one_sentence(code: int, err: str, says: str) -> None:
    assert code == 2, err
    assert err.startswith("damp: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and says.lower() in err.lower(), err


@pytest.mark.parametrize("case", list(CLI_CASES), ids=list(CLI_CASES))
def test_cli_refuses_with_one_sentence_and_leaves_the_folder_as_it_was(capsys, tmp_path, monkeypatch, case):
    monkeypatch.delenv("DAMP_TRACEBACK", raising=False)
    build, says = CLI_CASES[case]
    argv = [str(a) for a in build(tmp_path)]
    before = snapshot(tmp_path)
    code = main(argv)
    assert_one_sentence(code, capsys.readouterr().err, says)
    assert snapshot(tmp_path) == before


def test_cli_says_the_cuda_it_was_asked_for_is_missing(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = [str(a) for a in ["restore", scene(tmp_path), tmp_path / "restored.tif", "--device", "cuda"]]
    before = snapshot(tmp_path)
    assert_one_sentence(main(argv), capsys.readouterr().err, "CUDA")
    assert snapshot(tmp_path) == before


# --- an output folder the user cannot write to (checked as a user who is not root) ------------

def as_user_who_is_not_root() -> list[str]:
    """The command prefix that runs a program as a user other than root: none if we are not root."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot run the command as another user")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_unwritable_output_folder_is_refused_before_any_work_naming_the_output():
    prefix = as_user_who_is_not_root()
    folder = Path(tempfile.mkdtemp(prefix="damp-unwritable-", dir="/tmp"))
    try:
        folder.chmod(0o755)
        src = scene(folder)
        src.chmod(0o644)
        out = folder / "out"
        out.mkdir()
        out.chmod(0o555)
        before = snapshot(folder)
        env = {**os.environ, "HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
        env.pop("DAMP_TRACEBACK", None)
        done = subprocess.run([*prefix, sys.executable, "-m", "damp_engine.cli", "restore", str(src),
                               str(out / "restored.tif"), "--report", str(out / "report.json")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert_one_sentence(done.returncode, done.stderr, "not writable")
        assert str(out / "restored.tif") in done.stderr and ".part" not in done.stderr
        assert snapshot(folder) == before
    finally:
        (folder / "out").chmod(0o755)
        shutil.rmtree(folder)


# --- the Processing algorithms ---------------------------------------------------------------


def restore_parameters(f: Path, **extra) -> tuple[str, dict]:
    return "damp:restore", {"INPUT": str(scene(f)), "OUTPUT": str(f / "restored.tif"), "TILE": 32,
                            "DEVICE": "cpu", **extra}


QGIS_CASES = {
    "restore output is a folder": (lambda f: ("damp:restore", {"INPUT": str(scene(f)),
                                                               "OUTPUT": str(folder_named(f, "out.tif"))}),
                                   "is a folder"),
    "restore output is a text file": (lambda f: ("damp:restore", {"INPUT": str(scene(f)),
                                                                  "OUTPUT": str(text_file(f, "out.tif"))}),
                                      "not a raster"),
    "restore of a truncated GeoTIFF": (lambda f: restore_parameters(f, INPUT=str(truncated(f))), "damaged"),
    "upscale of a truncated GeoTIFF": (lambda f: ("damp:upscale", {"INPUT": str(truncated(f)), "FACTOR": "2",
                                                                   "TILE": 32, "DEVICE": "cpu",
                                                                   "OUTPUT": str(f / "x2.tif")}), "damaged"),
    "prompt of a truncated GeoTIFF": (lambda f: ("damp:prompt", {"INPUT": str(truncated(f)),
                                                                 "OUTPUT": str(f / "prompt.csv")}), "damaged"),
    "evaluate a truncated test": (lambda f: ("damp:evaluate", {"REFERENCE": str(scene(f)), "INPUT": str(truncated(f)),
                                                               "OUTPUT": str(f / "quality.csv")}), "damaged"),
    "report is a folder": (lambda f: restore_parameters(f, REPORT=str(folder_named(f, "report.json"))),
                           "is a folder"),
    "routing map is a text file": (lambda f: restore_parameters(f, ROUTING_MAP=str(text_file(f, "routing.tif"))),
                                   "not a raster"),
    "pickled model": (lambda f: restore_parameters(f, MODEL=str(pickled_model(f))), "pickled"),
    "pickled model with another suffix": (lambda f: restore_parameters(f, MODEL=str(pickled_model(f, "w.pth"))),
                                          "never loaded"),
    "model is a folder": (lambda f: restore_parameters(f, MODEL=str(folder_named(f, "models"))), "folder"),
    "missing model": (lambda f: restore_parameters(f, MODEL=str(f / "gone.safetensors")), "No model file"),
    "halo above the bound": (lambda f: restore_parameters(f, HALO=600), "0 to 512"),
    "one-band raster": (lambda f: ("damp:restore", {
        "INPUT": str(write_raster(f / "one.tif", smooth_cube(1, SIDE, SIDE))), "OUTPUT": str(f / "restored.tif")}),
                        "at least 3"),
    "vector layer": (lambda f: ("damp:prompt", {"INPUT": str(text_file(
        f, "points.geojson", '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
        '"geometry": {"type": "Point", "coordinates": [13.0, 52.4]}}]}')), "OUTPUT": str(f / "prompt.csv")}),
                     "not a raster layer"),
    "output is the input": (lambda f: ("damp:simulate", {"INPUT": str(scene(f)), "KIND": "stripes",
                                                         "OUTPUT": str(f / "scene.tif")}), "input"),
}


@pytest.mark.qgis
@pytest.mark.parametrize("case", list(QGIS_CASES), ids=list(QGIS_CASES))
def test_processing_refuses_with_one_sentence_and_leaves_the_folder_as_it_was(processing, tmp_path, case):
    from qgis.core import QgsProcessingException

    build, says = QGIS_CASES[case]
    algorithm, parameters = build(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(algorithm, parameters)
    message = str(caught.value).replace("Unable to execute algorithm\n", "", 1)
    assert "\n" not in message and "Traceback" not in message, message
    assert says.lower() in message.lower(), message
    assert snapshot(tmp_path) == before


# --- qgis_process: the pickled model is refused with the reason, not "Incorrect parameter value" --

@pytest.mark.qgis
def test_qgis_process_says_why_a_pickled_model_is_refused(tmp_path):
    from helpers import linked_plugin_env, qgis_process

    env = linked_plugin_env(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    src, model = scene(data), pickled_model(data)
    before = snapshot(data)
    done = qgis_process(env, "run", "damp:restore", "--", f"INPUT={src}", f"MODEL={model}",
                        f"OUTPUT={data / 'restored.tif'}")
    assert done.returncode != 0
    assert "pickled PyTorch file" in done.stdout + done.stderr
    assert "Incorrect parameter value for MODEL" not in done.stdout + done.stderr
    after = {name: digest for name, digest in snapshot(data).items() if not name.endswith(".aux.xml")}
    assert after == before  # QGIS itself caches the input's statistics in scene.tif.aux.xml when it opens it
