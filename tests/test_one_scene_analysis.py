"""One scene analysis (issue 11): `damp prompt`, `damp restore`'s report, the dock's inspection and
the Processing *Degradation prompt* algorithm all report the same prompt for the same raster,
because all of them take it from `damp_engine.scene_analysis.analyse_scene`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from damp_engine import cli
from damp_engine.inspect import inspect_raster
from damp_engine.prompt import METRIC_NAMES
from helpers import smooth_cube, tiny_model_file, write_raster

BANDS, SIDE = 31, 48


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("one_scene_analysis")


@pytest.fixture(scope="module")
def noisy(folder) -> Path:
    """31 bands × 48 × 48, smooth spectra plus Gaussian noise."""
    rng = np.random.default_rng(3)
    cube = smooth_cube(BANDS, SIDE, SIDE) + rng.normal(0, 0.05, (BANDS, SIDE, SIDE)).astype(np.float32)
    return write_raster(folder / "noisy.tif", cube, wavelengths=np.linspace(400.0, 700.0, BANDS))


@pytest.fixture(scope="module")
def model(folder) -> Path:
    """A random-init tiny model: the prompt does not depend on the weights, the plumbing is real."""
    return tiny_model_file(folder / "tiny.safetensors")


@pytest.fixture(scope="module")
def cli_prompt(noisy) -> dict[str, float]:
    """The six metrics `damp prompt --json` prints (other keys, e.g. the reading, are not compared)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["prompt", str(noisy), "--json"]) == 0
    printed = json.loads(out.getvalue())
    return {name: printed[name] for name in METRIC_NAMES}


def close(a: dict[str, float], b: dict[str, float]) -> bool:
    return list(a) == list(b) and np.allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-6, atol=1e-9)


def test_cli_prompt_has_the_six_metrics(cli_prompt):
    assert list(cli_prompt) == list(METRIC_NAMES)
    assert all(np.isfinite(v) for v in cli_prompt.values())


def test_restore_report_holds_the_prompt_that_damp_prompt_prints(noisy, model, folder, cli_prompt):
    report = folder / "report.json"
    assert cli.main(["restore", str(noisy), str(folder / "restored.tif"), "--model", str(model),
                     "--report", str(report), "--tile", "64"]) == 0
    scene_prompt = json.loads(report.read_text())["scene_prompt"]
    assert list(scene_prompt) == list(METRIC_NAMES)
    assert close(scene_prompt, cli_prompt)


def test_dock_inspection_reports_the_prompt_that_damp_prompt_prints(noisy, model, cli_prompt):
    assert close(inspect_raster(noisy, model=model, device="cpu").metrics, cli_prompt)


@pytest.mark.qgis
def test_processing_prompt_algorithm_reports_the_prompt_that_damp_prompt_prints(qgis_app, noisy, cli_prompt):
    import processing as qgis_processing  # pytest-qgis puts QGIS's python/plugins on sys.path
    from processing.core.Processing import Processing

    import damp_qgis

    Processing.initialize()
    plugin = damp_qgis.classFactory(None)
    plugin.initProcessing()
    try:
        result = qgis_processing.run("damp:prompt", {"INPUT": str(noisy), "OUTPUT": "TEMPORARY_OUTPUT"})
    finally:
        plugin.unload()
    assert close({name: result[name.upper()] for name in METRIC_NAMES}, cli_prompt)
