"""What the dock tests share: a stand-in for QgisInterface and an event loop that waits."""
from __future__ import annotations

import time

from qgis.core import QgsApplication, QgsMapLayer
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QEventLoop, QObject, QThread, pyqtSignal


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
