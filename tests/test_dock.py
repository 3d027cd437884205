"""The DAMP dock, offscreen: it shows the engine's numbers for a real CAVE crop, follows the active
layer and the map, and never shows the result of a superseded inspection."""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from qgis.core import QgsApplication, QgsMapLayer, QgsRasterLayer, QgsRectangle, QgsVectorLayer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QEventLoop, QObject, QThread, pyqtSignal

from damp_engine.checkpoint import save_checkpoint
from damp_engine.degrade import degrade
from damp_engine.inspect import inspect_raster
from damp_engine.model import DAMP, get_preset
from damp_engine.prompt import METRIC_NAMES, compute_prompt
from damp_engine.raster import RasterReader
from damp_qgis.dock import DampDock
from damp_qgis.dock.header import EXTENT

from conftest import DATA, write_raster

SIDE = 96      # pixels of the test crops
PIXEL = 30.0   # metres per pixel of their geotransform
ORIGIN = (500000.0, 5800000.0)


class FakeIface(QObject):
    """The part of QgisInterface the dock uses: the active layer, its change signal and the canvas."""

    currentLayerChanged = pyqtSignal("QgsMapLayer*")  # as QgisInterface declares it

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__()
        self.canvas = canvas
        self.layer: QgsMapLayer | None = None

    def mapCanvas(self) -> QgsMapCanvas:  # noqa: N802 (QGIS API)
        return self.canvas

    def activeLayer(self) -> QgsMapLayer | None:  # noqa: N802 (QGIS API)
        return self.layer

    def setActiveLayer(self, layer: QgsMapLayer | None) -> None:  # noqa: N802 (QGIS API)
        self.layer = layer
        self.currentLayerChanged.emit(layer)


def wait_for(condition, timeout: float = 60.0) -> None:
    """Process events until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the dock did not get there in time"
        QgsApplication.processEvents(QEventLoop.AllEvents, 20)
        QThread.msleep(5)


def idle(dock: DampDock) -> bool:
    return not dock.is_busy()


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict[str, Path]:
    """A clean and a noisy 31-band crop of a CAVE test scene (GeoTIFF, UTM 33N), and a 2-band raster."""
    folder = tmp_path_factory.mktemp("dock")
    with RasterReader(DATA / "test" / "cave_thread_spools.tif") as reader:
        counts, _ = reader.read(200, 200, SIDE, SIDE)
    noisy, _ = degrade(counts / 65535.0, "gaussian_noise", seed=0, sigma=40)
    geo = dict(geotransform=(ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL))
    return {
        "clean": write_raster(folder / "spools_clean.tif", counts.astype(np.uint16), **geo),
        "noisy": write_raster(folder / "spools_noisy.tif", (noisy * 65535.0).astype(np.float32), **geo),
        "two_bands": write_raster(folder / "two_bands.tif", counts[:2].astype(np.uint16), **geo),
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory, crops) -> Path:
    """A random-init tiny model whose card holds prompt ranges from the clean and noisy crops."""
    def metric_rows(path: Path) -> np.ndarray:
        with RasterReader(path) as reader:
            cube, _ = reader.read_all()
        half = SIDE // 2
        quads = [cube[:, y:y + half, x:x + half] / 65535.0 for y in (0, half) for x in (0, half)]
        return compute_prompt(np.stack(quads)).values.double().numpy()

    ranges = {kind: {m: [float(v[:, i].min()), float(v[:, i].max())] for i, m in enumerate(METRIC_NAMES)}
              for kind, v in (("clean", metric_rows(crops["clean"])), ("degraded", metric_rows(crops["noisy"])))}
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "dock_tiny.safetensors"
    return save_checkpoint(DAMP(get_preset("tiny")), path, {"name": "dock-test", "prompt_ranges": ranges})


@pytest.fixture(scope="module")
def expected(crops, model) -> dict:
    """The engine's own inspection of each crop, whole layer, as the dock asks for it."""
    return {name: inspect_raster(crops[name], model=model) for name in ("clean", "noisy")}


@pytest.fixture
def layers(qgis_app, crops) -> dict[str, QgsMapLayer]:
    return {
        "clean": QgsRasterLayer(str(crops["clean"]), "spools clean"),
        "noisy": QgsRasterLayer(str(crops["noisy"]), "spools noisy"),
        "two_bands": QgsRasterLayer(str(crops["two_bands"]), "two bands"),
        "vector": QgsVectorLayer("Point?crs=EPSG:32633", "points", "memory"),
    }


@pytest.fixture
def dock(qgis_app, model, layers):
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layers["clean"].crs())
    canvas.setExtent(layers["clean"].extent())
    iface = FakeIface(canvas)
    widget = DampDock(iface, model=str(model))
    widget.show()
    yield widget
    wait_for(lambda: idle(widget))
    widget.deleteLater()
    canvas.deleteLater()


def show(dock: DampDock, layer: QgsMapLayer) -> None:
    """Make ``layer`` the active layer and wait until the dock has reported on it."""
    dock.iface.setActiveLayer(layer)
    wait_for(lambda: idle(dock))


def test_shown_metrics_are_the_engines(dock, layers, expected):
    show(dock, layers["clean"])
    engine = expected["clean"]
    assert dock.pages.currentWidget() is dock.results
    assert dock.metrics.shown == engine.metrics
    for name, value in engine.metrics.items():
        assert dock.metrics.value_text(name) == f"{value:.4g}"
        bar = dock.metrics.bar(name)
        assert bar.value == value
        assert (bar.clean, bar.degraded) == (engine.ranges["clean"][name], engine.ranges["degraded"][name])
    assert dock.reading.headline == engine.reading
    assert "dock-test" in dock.header.text() and "CPU" in dock.header.text()


def test_heatmap_has_a_cell_per_block_and_expert_with_the_engines_gates(dock, layers, expected):
    show(dock, layers["noisy"])
    engine = expected["noisy"]
    preset = get_preset("tiny")
    assert dock.routing.cell_count() == sum(preset.dec_blocks) * preset.experts
    assert dock.routing.block_names == engine.block_names
    assert dock.routing.cells == engine.gates
    assert dock.shares.cells == engine.spatial_share


def test_unsuitable_layers_show_a_message_and_suitable_ones_values_again(dock, layers, expected):
    show(dock, layers["vector"])
    assert dock.pages.currentWidget() is dock.message
    assert "not a raster layer" in dock.message.text()
    assert not dock.restore_button.isEnabled()
    show(dock, layers["two_bands"])
    assert "2 band(s)" in dock.message.text()
    show(dock, layers["clean"])
    assert dock.pages.currentWidget() is dock.results
    assert dock.metrics.shown == expected["clean"].metrics
    assert dock.restore_button.isEnabled()


def test_a_newer_request_makes_the_older_result_ignored(dock, layers, expected):
    dock.iface.setActiveLayer(layers["noisy"])
    older = dock.current_task
    dock.iface.setActiveLayer(layers["clean"])  # before the noisy one can report
    assert dock.current_task is not older
    wait_for(lambda: idle(dock))
    assert dock.metrics.shown == expected["clean"].metrics
    older.inspection, older.error = expected["noisy"], None  # as if it had finished after all
    older.finished(True)
    assert dock.metrics.shown == expected["clean"].metrics
    assert dock.inspection is not expected["noisy"]


def test_extent_mode_inspects_the_visible_pixels_once_the_map_rests(dock, layers):
    show(dock, layers["clean"])
    dock.scope.set_scope(EXTENT)
    wait_for(lambda: idle(dock))
    assert dock.inspection.windows == [(0, 0, SIDE, SIDE)]
    left_half = QgsRectangle(ORIGIN[0], ORIGIN[1] - SIDE * PIXEL, ORIGIN[0] + SIDE // 2 * PIXEL, ORIGIN[1])
    dock.iface.mapCanvas().setExtent(left_half)
    wait_for(lambda: dock.inspection is not None and dock.inspection.windows[0][2] < SIDE)
    x0, y0, width, height = dock.inspection.windows[0]
    assert (x0, y0) == (0, 0) and SIDE // 2 <= width < SIDE and height == SIDE


def test_restore_button_opens_the_restore_dialog_with_the_layer(dock, layers, monkeypatch):
    calls = []
    fake = types.ModuleType("processing")
    fake.execAlgorithmDialog = lambda algorithm, parameters: calls.append((algorithm, parameters))
    monkeypatch.setitem(sys.modules, "processing", fake)
    show(dock, layers["clean"])
    dock.restore_button.click()
    assert calls == [("damp:restore", {"INPUT": layers["clean"]})]


def test_a_hidden_dock_waits_until_it_is_shown(dock, layers, expected):
    dock.hide()
    dock.iface.setActiveLayer(layers["noisy"])
    assert not dock.is_busy()
    dock.show()
    wait_for(lambda: idle(dock) and dock.inspection is not None)
    assert dock.metrics.shown == expected["noisy"].metrics
