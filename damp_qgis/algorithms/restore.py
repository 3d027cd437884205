"""damp:restore — restore a degraded hyperspectral raster with a DAMP model."""
from __future__ import annotations

import re
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import DampAlgorithm, TrueColour


def parse_bands(text: str) -> list[int] | None:
    """'1, 2, 130-135' → [1, 2, 130, 131, 132, 133, 134, 135]; empty → None (1-based band numbers)."""
    if not text.strip():
        return None
    bands: list[int] = []
    for item in re.split(r"[,;\s]+", re.sub(r"\s*-\s*", "-", text.strip())):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise QgsProcessingException(
                f"Bad bands: cannot read '{item}' in '{text}'. List 1-based band numbers and ranges, "
                "e.g. 1,2,130-135.")
        first, last = int(match[1]), int(match[2] or match[1])
        if not 1 <= first <= last:
            raise QgsProcessingException(
                f"Bad bands: '{item}' is not a band number or a rising range; bands count from 1, e.g. 130-135.")
        bands.extend(range(first, last + 1))
    return sorted(set(bands))


class RestoreAlgorithm(DampAlgorithm):
    """Restore (denoise, deblur, destripe, inpaint, recover lost bands) a hyperspectral raster."""

    MASK, BAD_BANDS = "MASK", "BAD_BANDS"
    ROUTING_MAP, PROMPT_MAP, REPORT = "ROUTING_MAP", "PROMPT_MAP", "REPORT"

    GROUP = "Restoration"
    HELP = ("Restores a degraded hyperspectral raster (noise, stripes, dead lines, blur, gaps, lost "
            "bands) with one DAMP model, whatever the degradation: the model measures six physical "
            "degradation metrics of the input (the degradation prompt) and routes every tile "
            "through the experts that suit it. The raster is processed in tiles, so any size fits in "
            "memory; the output keeps the grid, CRS, nodata, band names and wavelengths of the "
            "input, and is shown in true colour when loaded.")

    def name(self) -> str:
        return "restore"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Restore hyperspectral raster")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Degraded raster")),
                 "The hyperspectral raster to restore (GeoTIFF, ENVI or VRT; at least 3 bands).")
        self.add_model()
        self.add_tile()
        self.add_halo()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterRasterLayer(self.MASK, self.tr("Gap mask"), optional=True),
                 "Optional single-band raster on the same grid whose non-zero pixels are missing data "
                 "(clouds, dead pixels) to be filled by the model.")
        self.add(QgsProcessingParameterString(self.BAD_BANDS, self.tr("Bad bands"), optional=True),
                 "Optional 1-based numbers of bands that are lost or unusable and are rebuilt from the "
                 "others, e.g. 1,2,130-135.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Restored raster")),
                 "The restored raster (GeoTIFF .tif or ENVI .bsq/.bil/.bip): the input's data type, scale "
                 "and nodata for integer inputs, float32 otherwise.")
        self.add(QgsProcessingParameterRasterDestination(self.ROUTING_MAP, self.tr("Routing map"),
                                                         optional=True, createByDefault=False),
                 "Optional raster with, for every tile and decoder expert block (one band each), the "
                 "number (from 1) of the expert with the largest gate; 0 where nothing was restored.")
        self.add(QgsProcessingParameterRasterDestination(self.PROMPT_MAP, self.tr("Prompt map"),
                                                         optional=True, createByDefault=False),
                 "Optional raster with the six degradation-prompt metrics of every tile (one band each).")
        self.add(QgsProcessingParameterFileDestination(self.REPORT, self.tr("Run report"), "JSON (*.json)",
                                                       optional=True, createByDefault=False),
                 "Optional JSON file recording the model, device, timings and degradation prompt of the run.")

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.tiling import restore_raster

        source = self.input_raster(parameters, self.INPUT, context)
        has_mask = bool(self.parameterAsString(parameters, self.MASK, context))
        mask = self.input_raster(parameters, self.MASK, context, min_bands=1) if has_mask else None
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        routing_map = self.output_path(parameters, self.ROUTING_MAP, context)
        prompt_map = self.output_path(parameters, self.PROMPT_MAP, context)
        report_path = self.parameterAsFileOutput(parameters, self.REPORT, context) or None
        report = restore_raster(
            source, output, model=self.model_path(parameters, context),
            tile=self.parameterAsInt(parameters, self.TILE, context),
            halo=self.parameterAsInt(parameters, self.HALO, context),
            device=self.device(parameters, context), prompt_scope=self.prompt_scope(parameters, context),
            mask=mask,
            bad_bands=parse_bands(self.parameterAsString(parameters, self.BAD_BANDS, context)),
            report=report_path, routing_map=routing_map, prompt_map=prompt_map,
            log=feedback.pushInfo, **self.callbacks(feedback))
        feedback.pushInfo(report.summary())
        TrueColour.attach(context, output)
        return {self.OUTPUT: output, self.ROUTING_MAP: routing_map, self.PROMPT_MAP: prompt_map,
                self.REPORT: report_path}
