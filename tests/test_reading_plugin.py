"""The reading in QGIS: the *Degradation prompt* algorithm outputs it, the dock shows it with its
probability and evidence, and both say exactly what `damp prompt --json` says."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsRasterLayer
from qgis.gui import QgsMapCanvas

from damp_engine.cli import main
from damp_engine.degrade import degrade
from damp_engine.names import FAMILIES
from damp_engine.raster import RasterReader
from damp_engine.reading import read_raster
from helpers import FakeIface, tiny_model_file, wait_for, write_raster

pytestmark = pytest.mark.qgis
SIDE = 96


@pytest.fixture(scope="module")
def rasters(tmp_path_factory, shared_data) -> dict[str, Path]:
    """Crops of a held-out CAVE scene: noisy, striped, and coarse (×2), georeferenced."""
    folder = tmp_path_factory.mktemp("reading")
    with RasterReader(shared_data / "test" / "cave_thread_spools.tif") as reader:
        counts, _ = reader.read(200, 200, SIDE, SIDE)
    clean = counts / 65535.0
    out = {}
    for name, kind, params in (("noisy", "gaussian_noise", {"sigma": 40}), ("striped", "stripes", {}),
                               ("coarse", "sr", {"factor": 2})):
        cube, _ = degrade(clean, kind, seed=0, **params)
        out[name] = write_raster(folder / f"{name}.tif", (cube * 65535.0).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model_file(tmp_path_factory.mktemp("model") / "reading_dock.safetensors", name="reading-test")


def cli_reading(capsys, path: Path) -> dict:
    assert main(["prompt", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["reading"]


def dock_reading(qgis_app, model: Path, path: Path):
    """The dock's reading label after it has inspected the layer ``path``."""
    from damp_qgis.dock import DampDock

    layer = QgsRasterLayer(str(path), path.stem)
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    iface = FakeIface(canvas)
    dock = DampDock(iface, model=str(model))
    dock.show()
    iface.setActiveLayer(layer)
    wait_for(lambda: not dock.is_busy() and dock.inspection is not None, timeout=120.0)
    return dock


def test_the_algorithm_outputs_the_reading(processing, rasters, tmp_path):
    result = processing.run("damp:prompt", {"INPUT": str(rasters["noisy"]), "OUTPUT": str(tmp_path / "p.csv")})
    reading = read_raster(rasters["noisy"])
    assert result["READING"] == reading.sentence
    assert (result["TOP_FAMILY"], result["TOP_PROBABILITY"]) == (reading.top, pytest.approx(reading.probability))
    assert json.loads(result["READING_JSON"]) == reading.to_dict()
    with open(tmp_path / "p.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["top"] == "gaussian_noise" and row["reading"] == reading.sentence
    assert {f"p_{f}" for f in FAMILIES} <= set(row)
    assert float(row["noise_sigma"]) == pytest.approx(reading.severity["noise_sigma"], rel=1e-6)


def test_the_algorithm_logs_the_sentence_and_evidence(processing, rasters):
    from qgis.core import QgsProcessingFeedback

    lines = []

    class Log(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802 (QGIS API)
            lines.append(info)

    processing.run("damp:prompt", {"INPUT": str(rasters["striped"]), "OUTPUT": "TEMPORARY_OUTPUT"}, feedback=Log())
    reading = read_raster(rasters["striped"])
    assert reading.sentence in lines and any(reading.evidence[0] in line for line in lines)


def test_the_dock_shows_the_reading_with_probability_and_evidence(qgis_app, model, rasters):
    dock = dock_reading(qgis_app, model, rasters["coarse"])
    reading = read_raster(rasters["coarse"])
    label = dock.reading
    assert label.headline == reading.sentence
    assert label.probabilities[0] == ("coarse resolution", pytest.approx(reading.families["coarse_resolution"]))
    assert label.evidence == reading.evidence
    assert "Probability:" in label.text() and "coarse resolution" in label.text()
    dock.deleteLater()


def test_cli_dock_and_algorithm_agree(capsys, qgis_app, processing, model, rasters):
    for name in ("noisy", "striped"):
        path = rasters[name]
        from_cli = cli_reading(capsys, path)
        result = processing.run("damp:prompt", {"INPUT": str(path), "OUTPUT": "TEMPORARY_OUTPUT"})
        dock = dock_reading(qgis_app, model, path)
        assert json.loads(result["READING_JSON"]) == from_cli
        assert dock.inspection.degradation.to_dict() == from_cli
        assert dock.reading.headline == from_cli["sentence"] == result["READING"]
        dock.deleteLater()
