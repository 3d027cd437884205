"""Run inside the QGIS desktop by scripts/screenshot.py (``qgis --code``): load the clean, degraded and
restored sample in true colour, make the degraded one active, pick a pixel for the dock's spectral
profile, wait until the dock shows its values, grab the main window to ``$DAMP_SCREENSHOT``, then
open the Restore dialog on the degraded layer, grab it to ``$DAMP_SCREENSHOT_DIALOG`` and quit
(exit code 1 if the dock had no values in time)."""
import json
import os
import time

from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsCollapsibleGroupBox
from qgis.PyQt.QtCore import Qt, QTimer
from qgis.PyQt.QtWidgets import QDockWidget
from qgis.utils import iface

from damp_qgis.rendering import show_true_colour

WIDTH, HEIGHT = 1280, 960
DOCK_WIDTH = 311           # what QGIS gives a dock on the right by default: the dock must fit it
PICK = (24, 40)            # column, row (from 0) of the pixel whose spectra are shown
COLLAPSED = ("Routing (gate weights)", "Spatial / spectral share")  # room for the profile
TIMEOUT_S = 180
SETTLE_S = 2.0             # after the values arrive, time for the map and the dock to paint
DIALOG_S = 2.0             # for the Restore dialog to lay itself out


class Shot:
    """Polls the dock; grabs the window SETTLE_S after it first shows values, then the dialog."""

    def __init__(self, dock: QDockWidget, layer: QgsRasterLayer) -> None:
        self.dock, self.layer = dock, layer
        self.started = time.monotonic()
        self.ready_since: float | None = None
        self.dialog = None
        self.timer = QTimer(iface.mainWindow())
        self.timer.timeout.connect(self.poll)
        self.timer.start(250)

    def poll(self) -> None:
        now = time.monotonic()
        if self.dialog is not None:
            if now - self.dialog_since >= DIALOG_S:
                self.dialog.grab().save(os.environ["DAMP_SCREENSHOT_DIALOG"])
                self.dialog.close()
                self.dialog.deleteLater()  # its layer lists must not outlive the layers
                self.dialog = None
                self.finish(0)
            return
        if self.dock.inspection is not None and not self.dock.is_busy():
            if self.ready_since is None:  # the reading is in: bring the whole profile into view
                self.ready_since = now
                self.dock.scroll.ensureWidgetVisible(self.dock.profile.legend, 0, 8)
            if now - self.ready_since >= SETTLE_S:
                iface.messageBar().clearWidgets()  # e.g. "Task complete" for the first, slower inspection
                iface.mainWindow().grab().save(os.environ["DAMP_SCREENSHOT"])
                self.open_dialog()
        elif now - self.started > TIMEOUT_S or (not self.dock.is_busy() and now - self.started > 10):
            print(f"The DAMP dock shows no values: {self.dock.message.text()}", flush=True)
            self.finish(1)

    def open_dialog(self) -> None:
        import processing

        self.dialog = processing.createAlgorithmDialog("damp:restore", {"INPUT": self.layer})
        self.dialog.resize(820, 640)
        self.dialog.show()
        self.dialog_since = time.monotonic()

    def finish(self, code: int) -> None:
        self.timer.stop()
        self.dock.unload()
        QgsProject.instance().removeAllMapLayers()  # now, while every widget that lists them is alive
        QgsProject.instance().setDirty(False)
        QTimer.singleShot(200, lambda: QgsApplication.exit(code))


window = iface.mainWindow()
window.setGeometry(0, 0, WIDTH, HEIGHT)
loaded = []
for path, name in json.loads(os.environ["DAMP_SCREENSHOT_LAYERS"]):  # the last one ends on top
    layer = QgsRasterLayer(path, name)
    QgsProject.instance().addMapLayer(layer)
    show_true_colour(layer)
    loaded.append(layer)
active = loaded[-1]
iface.setActiveLayer(active)
iface.zoomToActiveLayer()
damp_dock = window.findChild(QDockWidget, "DampDock")
shot = None  # a global of QGIS's __main__, where --code scripts run: lives as long as QGIS
if damp_dock is not None:
    window.resizeDocks([damp_dock], [DOCK_WIDTH], Qt.Horizontal)
    for box in damp_dock.findChildren(QgsCollapsibleGroupBox):
        if box.title() in COLLAPSED:
            box.setCollapsed(True)
    extent = active.extent()
    centre = QgsPointXY(extent.xMinimum() + (PICK[0] + 0.5) * active.rasterUnitsPerPixelX(),
                        extent.yMaximum() - (PICK[1] + 0.5) * active.rasterUnitsPerPixelY())
    damp_dock.profile.show_at(centre, active.crs())
    shot = Shot(damp_dock, active)
else:
    QgsApplication.exit(1)
