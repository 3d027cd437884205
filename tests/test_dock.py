"""The DAMP dock, offscreen: it shows the engine's numbers for a real CAVE crop, follows the active
layer and the map, never shows the result of a superseded inspection or the text of another layer,
fits the 311 px QGIS docks it at, and offers the true-colour rendering of the outputs."""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsApplication, QgsMapLayer, QgsRasterLayer, QgsRectangle, QgsTask, QgsVectorLayer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QPoint

import damp_engine.inspect
from damp_engine.degrade import degrade
from damp_engine.errors import DampCancelled
from damp_engine.inspect import inspect_raster
from damp_engine.model import get_preset
from damp_engine.prompt import METRIC_NAMES, compute_prompt
from damp_engine.raster import RasterReader
from damp_qgis.dock import DampDock
from damp_qgis.dock.header import EXTENT

from helpers import FakeIface, tiny_model_file, wait_for, write_raster

pytestmark = pytest.mark.qgis
DOCK_WIDTH = 311  # what QGIS gives a dock on the right by default
SIDE = 96      # pixels of the test crops
PIXEL = 30.0   # metres per pixel of their geotransform
ORIGIN = (500000.0, 5800000.0)


def idle(dock: DampDock) -> bool:
    return not dock.is_busy()


@pytest.fixture(scope="module")
def crops(tmp_path_factory, shared_data) -> dict[str, Path]:
    """A clean and a noisy 31-band crop of a CAVE test scene (GeoTIFF, UTM 33N), and a 2-band raster."""
    folder = tmp_path_factory.mktemp("dock")
    with RasterReader(shared_data / "test" / "cave_thread_spools.tif") as reader:
        counts, _ = reader.read(200, 200, SIDE, SIDE)
    noisy, _ = degrade(counts / 65535.0, "gaussian_noise", seed=0, sigma=40)
    geo = dict(geotransform=(ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL))
    return {
        "clean": write_raster(folder / "spools_clean.tif", counts.astype(np.uint16), **geo),
        "noisy": write_raster(folder / "spools_noisy.tif", (noisy * 65535.0).astype(np.float32), **geo),
        "two_bands": write_raster(folder / "two_bands.tif", counts[:2].astype(np.uint16), **geo),
        "with_wavelengths": write_raster(folder / "spools_nm.tif", counts.astype(np.uint16),
                                         wavelengths=np.linspace(400.0, 700.0, counts.shape[0]), **geo),
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
    return tiny_model_file(tmp_path_factory.mktemp("model") / "dock_tiny.safetensors", name="dock-test",
                           prompt_ranges=ranges)


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
        "with_wavelengths": QgsRasterLayer(str(crops["with_wavelengths"]), "spools with wavelengths"),
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


def within(windows, region) -> bool:
    """Whether every (x0, y0, w, h) window lies inside the region (x0, y0, w, h)."""
    rx, ry, rw, rh = region
    return all(rx <= x and ry <= y and x + w <= rx + rw and y + h <= ry + rh for x, y, w, h in windows)


def test_extent_mode_inspects_the_visible_pixels_once_the_map_rests(dock, layers):
    show(dock, layers["clean"])
    requests = []
    start = dock._start
    dock._start = lambda request: (requests.append(request), start(request))[1]
    dock.scope.set_scope(EXTENT)
    wait_for(lambda: idle(dock))
    assert requests[-1].window == (0, 0, SIDE, SIDE)
    assert within(dock.inspection.windows, (0, 0, SIDE, SIDE))
    left_half = QgsRectangle(ORIGIN[0], ORIGIN[1] - SIDE * PIXEL, ORIGIN[0] + SIDE // 2 * PIXEL, ORIGIN[1])
    dock.iface.mapCanvas().setExtent(left_half)
    wait_for(lambda: requests[-1].window[2] < SIDE and idle(dock))
    x0, y0, width, height = requests[-1].window
    assert (x0, y0) == (0, 0) and SIDE // 2 <= width < SIDE and height == SIDE
    assert within(dock.inspection.windows, requests[-1].window)


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


# --- a narrow dock, no stale text, quiet cancels -----------------------------------------------

def test_the_dock_fits_its_default_width(dock, layers):
    dock.resize(DOCK_WIDTH, 1200)
    show(dock, layers["noisy"])
    QgsApplication.processEvents()
    viewport = dock.scroll.viewport()
    assert dock.widget().minimumSizeHint().width() <= DOCK_WIDTH
    assert dock.scroll.widget().minimumSizeHint().width() <= viewport.width()
    assert dock.scroll.widget().width() <= viewport.width()  # nothing hides to the right
    for name in METRIC_NAMES:
        label = dock.metrics._values[name]
        assert label.width() >= label.fontMetrics().horizontalAdvance(label.text()), f"{name} value cut"
    for grid in (dock.routing, dock.shares):
        right_edge = grid.mapTo(viewport, QPoint(grid.width(), 0)).x()
        assert grid.width() >= grid.minimumSizeHint().width() and right_edge <= viewport.width()
        assert grid.column_rect(grid.experts - 1).right() <= grid.width()  # the last expert's column shows


def test_the_first_inspection_shows_no_stale_message(dock, layers):
    assert "Select a hyperspectral raster layer" in dock.message.text()
    dock.iface.setActiveLayer(layers["clean"])
    assert dock.pages.currentWidget() is dock.message
    assert "Inspecting “spools clean”" in dock.message.text()
    assert "Select" not in dock.message.text() and not dock.status.text()
    wait_for(lambda: idle(dock))
    assert dock.pages.currentWidget() is dock.results


def test_another_layer_shows_nothing_of_the_previous_one_while_inspected(dock, layers):
    show(dock, layers["clean"])
    dock.iface.setActiveLayer(layers["noisy"])
    assert dock.pages.currentWidget() is dock.message and "spools noisy" in dock.message.text()
    assert not dock.details.isVisible()
    wait_for(lambda: idle(dock))
    assert dock.pages.currentWidget() is dock.results and dock.details.isVisible()


@pytest.fixture
def slow_noisy(monkeypatch, crops):
    """Inspecting the noisy crop runs until it is cancelled; other crops are inspected as usual."""
    real = damp_engine.inspect.inspect_raster

    def inspect(path, window=None, **kwargs):
        if str(path) != str(crops["noisy"]):
            return real(path, window, **kwargs)
        while not kwargs["cancelled"]():
            time.sleep(0.01)
        raise DampCancelled("cancelled")

    monkeypatch.setattr(damp_engine.inspect, "inspect_raster", inspect)


def test_a_cancelled_inspection_ends_complete_not_failed(dock, layers, slow_noisy):
    manager = QgsApplication.taskManager()
    statuses: list[tuple[int, int]] = []
    manager.statusChanged.connect(lambda task_id, status: statuses.append((task_id, status)))
    dock.iface.setActiveLayer(layers["noisy"])
    running = dock.current_task
    wait_for(lambda: running.status() == QgsTask.Running)
    running_id = manager.taskId(running)
    dock.iface.setActiveLayer(layers["clean"])  # cancels the running inspection
    wait_for(lambda: idle(dock))
    ends = [status for task_id, status in statuses if task_id == running_id and status in
            (QgsTask.Complete, QgsTask.Terminated)]
    assert ends == [QgsTask.Complete], "QGIS announces a terminated task as 'Task failed'"
    assert running.inspection is None and running.error is None
    assert dock.pages.currentWidget() is dock.results


def test_true_colour_is_offered_for_a_layer_with_wavelengths(dock, layers):
    show(dock, layers["clean"])
    assert not dock.true_colour_button.isEnabled()  # no wavelengths: QGIS's rendering stays
    layer = layers["with_wavelengths"]
    show(dock, layer)
    assert dock.true_colour_button.isEnabled()
    dock.true_colour_button.click()
    renderer = layer.renderer()
    wavelengths = np.linspace(400.0, 700.0, 31)
    assert renderer.type() == "multibandcolor"
    assert [renderer.redBand(), renderer.greenBand(), renderer.blueBand()] == [
        int(np.argmin(np.abs(wavelengths - nm))) + 1 for nm in (640, 550, 460)]


def test_the_spectral_profile_follows_the_active_layer(dock, layers):
    show(dock, layers["noisy"])
    assert dock.profile.layer is layers["noisy"]
    show(dock, layers["vector"])
    assert dock.profile.layer is None
