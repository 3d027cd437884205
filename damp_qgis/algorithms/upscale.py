"""damp:upscale — super-resolve a hyperspectral raster ×2 or ×4 onto a finer grid."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm, TrueColour, text_enum

FACTORS = ("2", "4")


class UpscaleAlgorithm(DampAlgorithm):
    """Super-resolve a raster: the output has FACTOR times more rows and columns, same extent."""

    FACTOR = "FACTOR"

    GROUP = "Restoration"
    HELP = ("Super-resolves a hyperspectral raster by 2 or 4: the raster is resampled onto a grid "
            "with 2 or 4 times smaller pixels over the same extent, then a DAMP model restores the "
            "detail lost to the coarse pixels. CRS, band names and wavelengths are kept.")

    def name(self) -> str:
        return "upscale"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Super-resolve hyperspectral raster")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Coarse raster")),
                 "The hyperspectral raster to super-resolve (at least 3 bands).")
        self.add(text_enum(self.FACTOR, self.tr("Scale factor"), list(FACTORS), FACTORS[0]),
                 "How many times finer the output pixels are: 2 or 4 (the output has that many times "
                 "more rows and columns).")
        self.add_model()
        self.add_tile()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Super-resolved raster")),
                 "The super-resolved raster (GeoTIFF .tif or ENVI .bsq/.bil/.bip): the input's data type "
                 "for integer inputs, float32 otherwise.")

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.tiling import upscale_raster

        source = self.input_raster(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        report = upscale_raster(
            source, output, int(self.parameterAsEnumString(parameters, self.FACTOR, context)),
            model=self.model_path(parameters, context),
            tile=self.parameterAsInt(parameters, self.TILE, context),
            device=self.device(parameters, context), prompt_scope=self.prompt_scope(parameters, context),
            log=feedback.pushInfo, **self.callbacks(feedback))
        feedback.pushInfo(report.summary())
        TrueColour.attach(context, output)
        return {self.OUTPUT: output}
