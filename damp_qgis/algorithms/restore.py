"""damp:restore — restore a degraded hyperspectral raster with a DAMP model."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from damp_engine import parse_bands  # one parser for the plugin and `damp restore --bad-bands`

from .base import CPU_TIME, HANDLES_WELL, DampAlgorithm, device_words, tr


class RestoreAlgorithm(DampAlgorithm):
    """Restore (denoise, deblur, destripe, inpaint, recover lost bands) a hyperspectral raster."""

    MASK, BAD_BANDS = "MASK", "BAD_BANDS"
    ROUTING_MAP, PROMPT_MAP, REPORT = "ROUTING_MAP", "PROMPT_MAP", "REPORT"

    GROUP_ID = "restoration"
    TAGS = tr("hyperspectral,restoration,restore,denoise,deblur,destripe,dead lines,inpainting,gap filling,"
              "bad bands,deep learning,DAMP")
    HELP = tr("Cleans a degraded hyperspectral raster: removes noise, stripes and dead lines, fills "
              "missing pixels, rebuilds lost bands and sharpens blurred detail, with one model and "
              "without being told which degradation it is: the model measures how the raster is "
              "degraded and adapts to it. The result keeps the grid, CRS, nodata, band names and "
              "wavelengths of the input and opens in true colour as “<input> — restored”; compare "
              "spectra before and after in the DAMP dock.")
    NOTES = (HANDLES_WELL, CPU_TIME,
             tr("Rasters of any size fit in memory: they are processed in tiles. Tile size, overlap, "
                "device and per-tile adaptation are under Advanced parameters; the optional run report "
                "records the technical details (experts used, scale factor, timings)."))

    def name(self) -> str:
        return "restore"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Restore hyperspectral raster")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Degraded raster")),
                 self.tr("The hyperspectral raster to clean (GeoTIFF, ENVI or VRT; at least 3 bands)."))
        self.add(QgsProcessingParameterRasterLayer(self.MASK, self.tr("Gap mask"), optional=True),
                 self.tr("Optional single-band raster on the same grid whose non-zero pixels are missing data "
                         "(clouds, dead pixels) to be filled in."))
        self.add(QgsProcessingParameterString(self.BAD_BANDS, self.tr("Bad bands"), optional=True),
                 self.tr("Optional 1-based numbers of bands that are lost or unusable and are rebuilt from the "
                         "others, e.g. 1,2,130-135."))
        self.add_model()
        self.add_tile()
        self.add_halo()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Restored raster")),
                 self.tr("The restored raster (GeoTIFF .tif or ENVI .bsq/.bil/.bip): the input's data type, scale "
                         "and nodata for integer inputs, float32 otherwise."))
        self.add(QgsProcessingParameterRasterDestination(self.ROUTING_MAP, self.tr("Routing map"),
                                                         optional=True, createByDefault=False),
                 self.tr("Optional raster showing which of the model's experts worked where: for every tile and "
                         "decoder block (one band each), the number (from 1) of the expert that did most of the "
                         "work; 0 where nothing was restored."))
        self.add(QgsProcessingParameterRasterDestination(self.PROMPT_MAP, self.tr("Prompt map"),
                                                         optional=True, createByDefault=False),
                 self.tr("Optional raster with the six degradation measures of every tile (one band each): "
                         "where the raster is noisy, blurred or has gaps."))
        self.add(QgsProcessingParameterFileDestination(self.REPORT, self.tr("Run report"), "JSON (*.json)",
                                                       optional=True, createByDefault=False),
                 self.tr("Optional JSON file recording the model, device, timings, scale factor, the degradation "
                         "measures and the experts used."))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import open_raster, restore_raster

        source = self.input_raster(parameters, self.INPUT, context)
        has_mask = bool(self.parameterAsString(parameters, self.MASK, context))
        mask = self.input_raster(parameters, self.MASK, context, min_bands=1) if has_mask else None
        bad_bands = parse_bands(self.parameterAsString(parameters, self.BAD_BANDS, context))
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        routing_map = self.output_path(parameters, self.ROUTING_MAP, context)
        prompt_map = self.output_path(parameters, self.PROMPT_MAP, context)
        report_path = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        info = open_raster(source)
        feedback.pushInfo(f"Restoring {info.width} × {info.height} px, {info.bands} bands"
                          + (f", rebuilding bands {self.parameterAsString(parameters, self.BAD_BANDS, context)}"
                             if bad_bands else "") + (", filling the gap mask" if mask else "") + "…")
        report = restore_raster(
            source, output, model=self.model_path(parameters, context),
            tile=self.parameterAsInt(parameters, self.TILE, context),
            halo=self.parameterAsInt(parameters, self.HALO, context),
            device=self.device(parameters, context), prompt_scope=self.prompt_scope(parameters, context),
            mask=mask, bad_bands=bad_bands,
            report=report_path, routing_map=routing_map, prompt_map=prompt_map,
            log=self.details_log(context, feedback), **self.callbacks(feedback))
        feedback.pushInfo(f"Restored in {report.seconds.get('total', 0.0):.1f} s on {device_words(report.device)}.")
        for event in report.events:  # e.g. a smaller batch after running out of GPU memory
            feedback.pushWarning(event)
        self.details_log(context, feedback)(report.summary())
        self.load_as(context, output, self.output_name(parameters, context, "restored"))
        self.load_as(context, routing_map, self.output_name(parameters, context, "routing map"))
        self.load_as(context, prompt_map, self.output_name(parameters, context, "prompt map"))
        return {self.OUTPUT: output, self.ROUTING_MAP: routing_map, self.PROMPT_MAP: prompt_map,
                self.REPORT: report_path}
