"""damp:prompt — the degradation prompt: six physical metrics that describe how a raster is degraded."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm


class PromptAlgorithm(DampAlgorithm):
    """Compute the degradation prompt (HFER, STU, SCM, SCS, GSTD, SCC) of a raster."""

    PROMPT_MAP = "PROMPT_MAP"

    GROUP = "Analysis"
    HELP = ("Computes the degradation prompt of a hyperspectral raster: the six closed-form "
            "spatial-spectral metrics that DAMP routes its experts on. Noise and stripes raise HFER "
            "and SCM, blur lowers HFER and GSTD, lost bands raise SCM and SCS. The metrics are "
            "averaged over sample tiles spread over the raster. The result is a one-row table "
            "(usable by later steps of a model) and one numeric output per metric; optionally a "
            "raster with the metrics of every tile shows where the degradation is.")

    def name(self) -> str:
        return "prompt"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Degradation prompt")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        from damp_engine.names import METRIC_MEANINGS, METRIC_NAMES, METRIC_TITLES

        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Hyperspectral raster")),
                 "The raster to describe (GeoTIFF, ENVI or VRT; at least 3 bands).")
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Degradation prompt table"),
                                                   QgsProcessing.TypeVector),
                 "A table without geometry (e.g. a .csv file) with one row: raster, "
                 + ", ".join(METRIC_NAMES) + ", bands, width, height and the number of sample tiles.")
        self.add(QgsProcessingParameterRasterDestination(self.PROMPT_MAP, self.tr("Prompt map"),
                                                         optional=True, createByDefault=False),
                 "Optional raster with the six metrics of every tile (one band per metric, one pixel "
                 "per tile), on the extent of the input.")
        self.add(QgsProcessingParameterNumber(self.TILE, self.tr("Prompt map tile size (pixels)"),
                                              defaultValue=256, minValue=16, maxValue=4096),
                 "Side of the tiles of the prompt map; used only when a prompt map is written.")
        for metric in METRIC_NAMES:
            self.add_output_with_help(QgsProcessingOutputNumber(metric.upper(), self.tr(METRIC_TITLES[metric])),
                                      METRIC_MEANINGS[metric])

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.names import METRIC_MEANINGS
        from damp_engine.scene import prompt_raster

        source = self.input_raster(parameters, self.INPUT, context)
        prompt = prompt_raster(source)
        for metric, value in prompt.metrics.items():
            feedback.pushInfo(f"{metric.upper():<5} {value:9.4f}  {METRIC_MEANINGS[metric]}")
        prompt_map = self.output_path(parameters, self.PROMPT_MAP, context)
        if prompt_map:
            from damp_engine.tiling import prompt_map_raster

            prompt_map_raster(source, prompt_map, tile=self.parameterAsInt(parameters, self.TILE, context),
                              **self.callbacks(feedback))
        table = self.write_table(parameters, self.OUTPUT, context, {"raster": source, **prompt.to_dict()})
        return {self.OUTPUT: table, self.PROMPT_MAP: prompt_map,
                **{metric.upper(): value for metric, value in prompt.metrics.items()}}
