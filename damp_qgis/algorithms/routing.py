"""damp:routing — map which DAMP expert each tile is routed to, per decoder stage."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm


class RoutingAlgorithm(DampAlgorithm):
    """Write the dominant expert of every tile and decoder stage as a raster."""

    GROUP = "Analysis"
    HELP = ("Shows how the DAMP model routes a raster: every tile is run through the network and, "
            "for each decoder expert block (one output band each), the number of the expert with "
            "the largest gate is written over the tile. Regions with different degradations (e.g. "
            "striped or blurred parts) show up as regions routed to different experts. Nothing is "
            "restored; see the Restore algorithm's routing map to get both at once.")

    def name(self) -> str:
        return "routing"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Routing map")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Hyperspectral raster")),
                 "The raster whose routing to map (at least 3 bands).")
        self.add_model()
        self.add_tile()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Routing map")),
                 "Raster on the input's grid with one band per decoder expert block and, as value, the "
                 "number (from 1) of the expert with the largest gate in each tile; 0 where there is no data.")

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.tiling import routing_raster

        source = self.input_raster(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        report = routing_raster(source, output, model=self.model_path(parameters, context),
                                tile=self.parameterAsInt(parameters, self.TILE, context),
                                device=self.device(parameters, context),
                                prompt_scope=self.prompt_scope(parameters, context), log=feedback.pushInfo,
                                **self.callbacks(feedback))
        feedback.pushInfo(report.summary())
        return {self.OUTPUT: output}
