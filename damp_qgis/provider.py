"""The "DAMP" Processing provider: the algorithms of ``algorithms/`` plus the shipped example models."""
from __future__ import annotations

from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider, Qgis
from qgis.PyQt.QtGui import QIcon

import damp_engine

from .algorithms import ALGORITHMS
from .paths import MODELS, icon_path

RASTER_EXTENSIONS = ["tif", "bsq", "bil", "bip"]  # what damp_engine.raster writes: GeoTIFF or ENVI


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
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)):
                self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"Cannot read the model {path}; it is left out.", "DAMP", Qgis.Warning)
