"""The DAMP dock: why the model would restore the active layer the way it does, and what it did.

For the active raster layer (whole, sampled, or the part the map shows) the dock shows the six
degradation-prompt metrics against the ranges of clean and degraded training data, a
plain-language reading of them, how the model routes the layer to its experts, and each
expert's spatial/spectral split. Everything is computed by ``damp_engine.inspect`` in a QgsTask;
the dock only asks and shows. A spectral profile (``profile.py``) shows a picked pixel's
spectrum in the active layer and in the layers made from it; *True colour* draws the active
layer as the outputs are drawn. Everything fits the 311 px QGIS gives a dock by default: long
titles are shortened with "…", text wraps, and there is no horizontal scroll bar.

Layout, top to bottom: model and device; scope; then, scrolling, the reading slot (or a message),
the spectral profile, the metrics and the routing details; then the status line and the actions.
``self.reading`` is the one widget of the reading slot (``reading.py``): it is filled by
``_show_reading`` only.

Refresh rules: a new active layer, a change of scope, and (in extent mode) the map coming to rest
for ``EXTENT_DELAY_MS`` start a new inspection; a newer inspection cancels the older one, whose
result, should it still arrive, is ignored. While the dock is hidden nothing is computed; it
catches up when shown. While a layer is inspected for the first time the dock says so and shows
nothing of the previous layer.
"""
from __future__ import annotations

from functools import partial

from qgis.core import QgsApplication, QgsMapLayer, QgsRasterLayer
from qgis.gui import QgsCollapsibleGroupBox, QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSlot
from qgis.PyQt.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QScrollArea, QStackedWidget, QVBoxLayout,
                                 QWidget)

from ..rendering import show_true_colour, true_colour_bands
from .header import EXTENT, ModelHeader, ScopeSwitch
from .layers import layer_problem, visible_window
from .metrics import MetricsPanel
from .profile import ProfilePanel
from .reading import ReadingLabel
from .routing import ExpertShares, RoutingHeatmap
from .task import InspectRequest, InspectTask

EXTENT_DELAY_MS = 500
RESTORE_ALGORITHM = "damp:restore"


class DampDock(QgsDockWidget):
    """The dock widget; ``model`` is a .safetensors file, or None for the default model."""

    def __init__(self, iface, model: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__("DAMP degradation", parent)
        self.setObjectName("DampDock")
        self.iface = iface
        self.model = model
        self.layer: QgsMapLayer | None = None
        self.inspection = None  # the Inspection shown, if any
        self._shown_layer_id: str | None = None  # the layer whose inspection is shown
        self._inspected_once = False  # the model is loaded once an inspection has come back
        self._task: InspectTask | None = None
        self._tasks: set[InspectTask] = set()  # Python owns the running tasks' wrappers
        self._pending = False  # a refresh was skipped while the dock was hidden

        self.header = ModelHeader()
        self.scope = ScopeSwitch()
        self.message = QLabel()
        self.reading = ReadingLabel()
        self.metrics = MetricsPanel()
        self.routing = RoutingHeatmap()
        self.shares = ExpertShares()
        self.profile = ProfilePanel(iface.mapCanvas())
        self.status = QLabel()
        self.true_colour_button = QPushButton("True colour")
        self.restore_button = QPushButton("Restore this layer…")
        self.pages = QStackedWidget()
        self.results = QWidget()
        self.details = QWidget()  # metrics, routing and expert shares: shown with an inspection
        self.scroll = QScrollArea()
        self._build()

        self._extent_timer = QTimer(self)
        self._extent_timer.setSingleShot(True)
        self._extent_timer.setInterval(EXTENT_DELAY_MS)
        self._extent_timer.timeout.connect(self._on_extent_settled)
        self.scope.changed.connect(self.refresh)
        self.restore_button.clicked.connect(self._open_restore_dialog)
        self.true_colour_button.clicked.connect(self.show_true_colour)
        self.visibilityChanged.connect(self._on_visibility_changed)
        iface.currentLayerChanged.connect(self.set_layer)
        iface.mapCanvas().extentsChanged.connect(self._extent_timer.start)
        self.destroyed.connect(partial(_cancel_all, self._tasks))
        self.set_layer(iface.activeLayer())

    def _build(self) -> None:
        """Lay the widgets out: header, scope, then (scrolling) the reading slot or a message, the
        spectral profile, the metrics and the routing details, then the status and the actions."""
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignCenter)
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: gray;")
        self.restore_button.setToolTip(f"Open the Processing dialog of {RESTORE_ALGORITHM} with this layer as input.")
        self.true_colour_button.setToolTip("Draw this layer in true colour (the bands nearest 640, 550 and "
                                           "460 nm, 2–98 % stretch), as DAMP draws its outputs, so that "
                                           "before and after compare fairly.")

        column = QVBoxLayout(self.results)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.reading)  # the reading slot
        column.addStretch(1)
        details = QVBoxLayout(self.details)
        details.setContentsMargins(0, 0, 0, 0)
        details.addWidget(_group("Degradation prompt", self.metrics))
        details.addWidget(_group("Routing (gate weights)", self.routing))
        details.addWidget(_group("Spatial / spectral share", self.shares))
        self.details.setVisible(False)
        self.pages.addWidget(self.message)
        self.pages.addWidget(self.results)

        content = QWidget()
        stack = QVBoxLayout(content)
        stack.setContentsMargins(0, 0, 0, 0)
        stack.addWidget(self.pages)
        stack.addWidget(_group("Spectral profile", self.profile))
        stack.addWidget(self.details)
        stack.addStretch(1)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # everything wraps or elides instead
        self.scroll.setWidget(content)

        actions = QHBoxLayout()
        actions.setContentsMargins(0, 0, 0, 0)
        actions.addWidget(self.true_colour_button)
        actions.addWidget(self.restore_button, 1)
        body = QWidget()
        layout = QVBoxLayout(body)
        for widget in (self.header, self.scope):
            layout.addWidget(widget)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.status)
        layout.addLayout(actions)
        self.setWidget(body)

    # ----------------------------------------------------------------------------- requests

    @pyqtSlot("QgsMapLayer*")
    def set_layer(self, layer: QgsMapLayer | None) -> None:
        """Inspect ``layer`` (the active layer) from now on."""
        self.layer = layer
        self.profile.set_layer(layer)
        self.true_colour_button.setEnabled(true_colour_bands(layer) is not None)
        self.refresh()

    def show_true_colour(self) -> bool:
        """Draw the active layer in true colour (the renderer DAMP's outputs get); False if it has none."""
        return show_true_colour(self.layer)

    def refresh(self) -> None:
        """Start a new inspection of the layer in the current scope, or say why there is none."""
        problem = layer_problem(self.layer)
        self.restore_button.setEnabled(problem is None)
        window = None
        if problem is None and self.scope.scope == EXTENT:
            window = visible_window(self.layer, self.iface.mapCanvas())
            if window is None:
                problem = f"“{self.layer.name()}” is not in the map view. Pan to it, or inspect the whole layer."
        if problem is not None:
            self._cancel_current()
            self._show_message(problem)
            return
        if not self.isVisible():
            self._pending = True
            return
        self._pending = False
        self._start(InspectRequest(self.layer.id(), self.layer.name(), self.layer.source(), window, self.model))

    def is_busy(self) -> bool:
        """Whether any inspection (current or stale) has not reported back yet."""
        return bool(self._tasks)

    @property
    def current_task(self) -> InspectTask | None:
        """The inspection whose result will be shown, if one is running."""
        return self._task

    def _start(self, request: InspectRequest) -> None:
        self._cancel_current()
        task = InspectTask(request, self._on_task_done)
        self._task = task
        self._tasks.add(task)
        if self._shown_layer_id == request.layer_id:  # the same layer, another part: grey out meanwhile
            self.status.setText(f"Inspecting “{request.layer_name}”…")
            self.results.setEnabled(False)
            self.details.setEnabled(False)
        else:  # nothing of another layer stays on screen
            first = "" if self._inspected_once else "\n\nThe first inspection also loads the model: a few seconds more."
            self._show_message(f"Inspecting “{request.layer_name}”…{first}")
        QgsApplication.taskManager().addTask(task)

    def _cancel_current(self) -> None:
        """Cancel the current inspection; its result, if it still comes, is ignored."""
        task, self._task = self._task, None  # first, since cancelling a queued task reports at once
        if task is not None:
            task.cancel()

    def _on_task_done(self, task: InspectTask) -> None:
        self._tasks.discard(task)
        if sip.isdeleted(self) or task is not self._task:
            return  # the dock is gone, or a newer request superseded this one
        self._task = None
        if task.inspection is not None:
            self._show_inspection(task.inspection, task.request.layer_id)
        else:
            self._show_message(task.error or "The inspection was cancelled.")

    # ----------------------------------------------------------------------------- display

    def _show_inspection(self, inspection, layer_id: str) -> None:
        self.inspection = inspection
        self._shown_layer_id = layer_id
        self._inspected_once = True
        self.header.set_model(inspection.model, inspection.device)
        self._show_reading(inspection)
        self.metrics.show_metrics(inspection.metrics, inspection.ranges)
        self.routing.set_cells(inspection.block_names, inspection.gates)
        self.shares.set_cells(inspection.block_names, inspection.spatial_share)
        self.status.setText(_describe_windows(inspection.windows, inspection.bands))
        self.results.setEnabled(True)
        self.details.setEnabled(True)
        self.details.setVisible(True)
        self.pages.setCurrentWidget(self.results)

    def _show_reading(self, inspection) -> None:
        """Fill the reading slot from the inspection: its ``damp_engine.reading`` reading."""
        if getattr(inspection, "degradation", None) is not None:
            self.reading.set_reading(inspection.degradation)
        else:
            self.reading.show_reading(inspection.reading, inspection.evidence)

    def _show_message(self, text: str) -> None:
        self.inspection = None
        self._shown_layer_id = None
        self.message.setText(text)
        self.status.clear()
        self.details.setVisible(False)
        self.pages.setCurrentWidget(self.message)

    def unload(self) -> None:
        """Before the dock goes away: stop the inspections, release the map tool, remove the marker."""
        self._cancel_current()
        _cancel_all(self._tasks)
        self.profile.pick_button.setChecked(False)
        self.profile.remove_marker()

    # ----------------------------------------------------------------------------- events

    def _on_extent_settled(self) -> None:
        if self.scope.scope == EXTENT:
            self.refresh()

    def _on_visibility_changed(self, visible: bool) -> None:
        if visible and self._pending:
            self.refresh()

    def _open_restore_dialog(self) -> None:
        import processing

        if isinstance(self.layer, QgsRasterLayer):
            processing.execAlgorithmDialog(RESTORE_ALGORITHM, {"INPUT": self.layer})


def _group(title: str, widget: QWidget) -> QgsCollapsibleGroupBox:
    """``widget`` in a collapsible group box called ``title``."""
    group = QgsCollapsibleGroupBox(title)
    QVBoxLayout(group).addWidget(widget)
    return group


def _describe_windows(windows: list[tuple[int, int, int, int]], bands: int) -> str:
    """What was read, e.g. "4 windows of 128 × 128 px at full resolution · 31 bands"."""
    _, _, width, height = windows[0]
    if len(windows) == 1:
        return f"Read {width} × {height} px at full resolution · {bands} bands"
    return f"Read {len(windows)} windows of {width} × {height} px at full resolution · {bands} bands"


def _cancel_all(tasks: set[InspectTask], *_) -> None:
    """Cancel the inspections of a dock that is being deleted (their results have nowhere to go)."""
    for task in list(tasks):
        task.cancel()
