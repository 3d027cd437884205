"""damp:routing — map which DAMP expert each tile is routed to, per decoder stage."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import CPU_TIME, DampAlgorithm, device_words, tr


class RoutingAlgorithm(DampAlgorithm):
    """Write the dominant expert of every tile and decoder stage as a raster."""

    GROUP_ID = "analysis"
    TAGS = tr("hyperspectral,routing,experts,mixture of experts,map,analysis,DAMP")
    HELP = tr("Shows where the model would treat a raster differently: the model has several "
              "specialised parts (experts), and this map says, for every tile and for each of the "
              "model's decoder blocks (one band each), which expert does most of the work there. Parts "
              "with different degradations (e.g. a striped or a blurred area) show up as areas handled "
              "by different experts. Nothing is restored; Restore's optional routing map gives both at once.")
    NOTES = (CPU_TIME, tr("Tile size, device and per-tile adaptation are under Advanced parameters."))

    def name(self) -> str:
        return "routing"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Routing map")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Hyperspectral raster")),
                 self.tr("The raster whose routing to map (at least 3 bands)."))
        self.add_model()
        self.add_tile()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Routing map")),
                 self.tr("Raster on the input's grid with one band per decoder expert block and, as value, the "
                         "number (from 1) of the expert with the largest gate in each tile; 0 where there is no data."))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import routing_raster

        source = self.input_raster(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        report = routing_raster(source, output, model=self.model_path(parameters, context),
                                tile=self.parameterAsInt(parameters, self.TILE, context),
                                device=self.device(parameters, context),
                                prompt_scope=self.prompt_scope(parameters, context),
                                log=self.details_log(context, feedback), **self.callbacks(feedback))
        feedback.pushInfo(f"Mapped {report.tiles} tile(s) in {report.seconds.get('total', 0.0):.1f} s on "
                          f"{device_words(report.device)}.")
        self.details_log(context, feedback)(report.summary())
        self.load_as(context, output, self.output_name(parameters, context, "routing map"))
        return {self.OUTPUT: output}
