"""damp:upscale — super-resolve a hyperspectral raster ×2 or ×4 onto a finer grid."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm, device_words, text_enum, tr

FACTORS = ("2", "4")


class UpscaleAlgorithm(DampAlgorithm):
    """Super-resolve a raster: the output has FACTOR times more rows and columns, same extent."""

    FACTOR = "FACTOR"

    GROUP_ID = "restoration"
    TAGS = tr("hyperspectral,super-resolution,upscale,upsample,sharpen,resolution,deep learning,DAMP")
    HELP = tr("Makes a coarse hyperspectral raster 2 or 4 times sharper: the output covers the same "
              "extent with 2 or 4 times smaller pixels, and the model restores the detail the coarse "
              "pixels lost. CRS, band names and wavelengths are kept; the output opens in true colour "
              "as “<input> — super-resolved ×2” (or ×4).")
    NOTES = (tr("Works best for ×4; at ×2 the gain over plain resampling is small."),
             tr("Time: on a 2-core CPU about 10 s per megapixel of output of a 31-band raster and about 2.5 "
                "minutes per megapixel of output of a 224-band one; a CUDA GPU is many times faster."),
             tr("Tile size, device and per-tile adaptation are under Advanced parameters."))

    def name(self) -> str:
        return "upscale"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Super-resolve raster")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Coarse raster")),
                 self.tr("The hyperspectral raster to super-resolve (at least 3 bands)."))
        self.add(text_enum(self.FACTOR, self.tr("Scale factor"), list(FACTORS), FACTORS[0]),
                 self.tr("How many times finer the output pixels are: 2 or 4 (the output has that many times "
                         "more rows and columns)."))
        self.add_model()
        self.add_tile()
        self.add_halo()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Super-resolved raster")),
                 self.tr("The super-resolved raster (GeoTIFF .tif or ENVI .bsq/.bil/.bip): the input's data type "
                         "for integer inputs, float32 otherwise."))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import upscale_raster

        source = self.input_raster(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        factor = int(self.parameterAsEnumString(parameters, self.FACTOR, context))
        report = upscale_raster(
            source, output, factor,
            model=self.model_path(parameters, context),
            tile=self.parameterAsInt(parameters, self.TILE, context),
            halo=self.parameterAsInt(parameters, self.HALO, context),
            device=self.device(parameters, context), prompt_scope=self.prompt_scope(parameters, context),
            log=self.details_log(context, feedback), **self.callbacks(feedback))
        feedback.pushInfo(f"Super-resolved ×{factor} to {report.width} × {report.height} px in "
                          f"{report.seconds.get('total', 0.0):.1f} s on {device_words(report.device)}.")
        self.details_log(context, feedback)(report.summary())
        self.load_as(context, output, self.output_name(parameters, context, f"super-resolved ×{factor}"))
        return {self.OUTPUT: output}
