"""Run inside the QGIS desktop by scripts/screenshot.py (``qgis --code``): show the loaded raster in
true colour, wait until the DAMP dock shows its values, grab the main window to
``$DAMP_SCREENSHOT`` and quit (exit code 1 if the dock had no values in time)."""
import os
import time

from qgis.core import (QgsApplication, QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsProject,
                       QgsRasterLayer, QgsRasterMinMaxOrigin)
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface

from damp_engine.raster import open_raster

WIDTH, HEIGHT, DOCK_WIDTH = 1280, 960, 430
TIMEOUT_S = 180
SETTLE_S = 2.0  # after the values arrive, time for the map and the dock to paint


def true_colour(layer: QgsRasterLayer) -> None:
    """Red, green and blue from the bands nearest 640/550/460 nm, 2–98 % cumulative-cut stretch."""
    red, green, blue = (band + 1 for band in open_raster(layer.source()).rgb_bands())
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), red, green, blue))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum, QgsRasterMinMaxOrigin.CumulativeCut)
    layer.triggerRepaint()


class Shot:
    """Polls the dock; grabs the window SETTLE_S after it first shows values, or gives up after TIMEOUT_S."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.ready_since: float | None = None
        self.timer = QTimer(iface.mainWindow())
        self.timer.timeout.connect(self.poll)
        self.timer.start(250)

    def poll(self) -> None:
        dock = iface.mainWindow().findChild(QDockWidget, "DampDock")
        now = time.monotonic()
        if dock is not None and dock.inspection is not None and not dock.is_busy():
            self.ready_since = self.ready_since or now
            if now - self.ready_since >= SETTLE_S:
                self.finish(0)
        elif now - self.started > TIMEOUT_S:
            self.finish(1)

    def finish(self, code: int) -> None:
        self.timer.stop()
        iface.messageBar().clearWidgets()  # e.g. "Task complete" for the first, slower inspection
        iface.mainWindow().grab().save(os.environ["DAMP_SCREENSHOT"])
        QgsProject.instance().setDirty(False)
        QgsApplication.exit(code)


window = iface.mainWindow()
window.setGeometry(0, 0, WIDTH, HEIGHT)
raster = next(layer for layer in QgsProject.instance().mapLayers().values() if isinstance(layer, QgsRasterLayer))
true_colour(raster)
iface.setActiveLayer(raster)
iface.zoomToActiveLayer()
damp_dock = window.findChild(QDockWidget, "DampDock")
if damp_dock is not None:
    window.resizeDocks([damp_dock], [DOCK_WIDTH], Qt.Horizontal)
shot = Shot()  # a global of QGIS's __main__, where --code scripts run: lives as long as QGIS
