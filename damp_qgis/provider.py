"""The "DAMP" Processing provider: the algorithms of ``algorithms/`` plus the shipped example models."""
from __future__ import annotations

from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider, Qgis
from qgis.PyQt.QtGui import QIcon

import damp_engine

from .algorithms import ALGORITHMS
from .paths import MODELS, icon_path

RASTER_EXTENSIONS = ["tif", "bsq", "bil", "bip"]  # what damp_engine.raster writes: GeoTIFF or ENVI
# The toolbox names of the shipped models; their ids (damp:<file's model name>) never change.
EXAMPLE_TITLES = {"simulate_restore_evaluate": "Simulate, restore and evaluate"}


class ExampleModel(QgsProcessingModelAlgorithm):
    """A shipped .model3 listed under a readable name (QGIS 3.22 shows a model's id as its name)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.loaded = self.fromFile(path)

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return EXAMPLE_TITLES.get(self.name(), self.name())

    def createInstance(self) -> "ExampleModel":  # noqa: N802 (QGIS API)
        instance = ExampleModel(self.path)
        instance.setProvider(self.provider())
        return instance


class DampProvider(QgsProcessingProvider):
    """Provider id ``damp``: restoration, analysis, simulation and training of DAMP models."""

    def id(self) -> str:
        return "damp"

    def name(self) -> str:
        return "DAMP"

    def longName(self) -> str:  # noqa: N802 (QGIS API)
        return "DAMP hyperspectral restoration"

    def versionInfo(self) -> str:  # noqa: N802 (QGIS API)
        return damp_engine.__version__

    def icon(self) -> QIcon:
        return QIcon(icon_path("damp"))

    def svgIconPath(self) -> str:  # noqa: N802 (QGIS API)
        return icon_path("damp")

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802 (QGIS API)
        return RASTER_EXTENSIONS

    def defaultRasterFileExtension(self) -> str:  # noqa: N802 (QGIS API)
        return "tif"

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS API)
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
        for path in sorted(MODELS.glob("*.model3")):
            model = ExampleModel(str(path))
            if model.loaded:
                self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"Cannot read the model {path}; it is left out.", "DAMP", Qgis.Warning)
