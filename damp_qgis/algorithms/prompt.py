"""damp:prompt — the degradation prompt (six physical metrics) of a raster, and its reading: which
degradations it shows, how likely, and how strong (``damp_engine.read_raster``)."""
from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm, tr

SEVERITY_COLUMNS = ("noise_sigma", "blur_width_px", "coarse_factor", "missing_fraction", "lost_bands")


class PromptAlgorithm(DampAlgorithm):
    """Compute the degradation prompt (HFER, STU, SCM, SCS, GSTD, SCC) of a raster and read it."""

    PROMPT_MAP = "PROMPT_MAP"
    READING, TOP, TOP_PROBABILITY, READING_JSON = "READING", "TOP_FAMILY", "TOP_PROBABILITY", "READING_JSON"

    GROUP_ID = "analysis"
    TAGS = tr("hyperspectral,degradation,prompt,metrics,noise,blur,stripes,quality,reading,analysis,DAMP")
    HELP = tr("Computes the degradation prompt of a hyperspectral raster: the six closed-form "
              "spatial-spectral metrics that DAMP routes its experts on. Noise and stripes raise HFER "
              "and SCM, blur lowers HFER and GSTD, lost bands raise SCM and SCS. The metrics are "
              "averaged over sample tiles spread over the raster. The result is a one-row table "
              "(usable by later steps of a model) and one numeric output per metric; optionally a "
              "raster with the metrics of every tile shows where the degradation is. The reading of "
              "the prompt comes with it: a calibrated probability for each family of degradation "
              "(clean, Gaussian noise, signal-dependent noise, blur, coarse resolution, missing "
              "pixels, lost bands, stripes, dead lines, impulse noise), the severities of those "
              "present in the raster's own units (noise σ, blur width, coarse-pixel factor, missing "
              "share, lost bands), and one sentence that says it: the same reading as the DAMP dock "
              "and the command 'damp prompt'.")

    def name(self) -> str:
        return "prompt"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Degradation prompt")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        from damp_engine import METRIC_MEANINGS, METRIC_NAMES, METRIC_TITLES

        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Hyperspectral raster")),
                 self.tr("The raster to describe (GeoTIFF, ENVI or VRT; at least 3 bands)."))
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Degradation prompt table"),
                                                   QgsProcessing.TypeVector),
                 self.tr("A table without geometry (e.g. a .csv file) with one row: raster, {metrics}, bands, "
                         "width, height, the number of sample tiles, then the reading: its sentence (reading), the "
                         "top family (top), one probability per family (p_clean, p_gaussian_noise, ...) and the "
                         "severities {severities} (empty where they do not apply; lost_bands as 1-based band "
                         "numbers, e.g. 12,13).").format(metrics=", ".join(METRIC_NAMES),
                                                         severities=", ".join(SEVERITY_COLUMNS)))
        self.add(QgsProcessingParameterRasterDestination(self.PROMPT_MAP, self.tr("Prompt map"),
                                                         optional=True, createByDefault=False),
                 self.tr("Optional raster with the six metrics of every tile (one band per metric, one pixel "
                         "per tile), on the extent of the input."))
        self.add(QgsProcessingParameterNumber(self.TILE, self.tr("Prompt map tile size (pixels)"),
                                              defaultValue=256, minValue=16, maxValue=4096),
                 self.tr("Side of the tiles of the prompt map; used only when a prompt map is written."))
        for metric in METRIC_NAMES:  # the engine's names and meanings, as the CLI and the dock show them
            self.add_output_with_help(QgsProcessingOutputNumber(metric.upper(), METRIC_TITLES[metric]),
                                      METRIC_MEANINGS[metric])
        self.add_output_with_help(QgsProcessingOutputString(self.READING, self.tr("Reading")),
                                  self.tr("The reading of the degradation in one sentence, e.g. \"Gaussian noise "
                                          "(98 %), σ ≈ 0.021 (median over bands).\""))
        self.add_output_with_help(QgsProcessingOutputString(self.TOP, self.tr("Most likely degradation family")),
                                  self.tr("The most probable family: clean, gaussian_noise, signal_dependent_noise, "
                                          "blur, coarse_resolution, missing_pixels, lost_bands, stripes, dead_lines "
                                          "or impulse_noise."))
        self.add_output_with_help(QgsProcessingOutputNumber(self.TOP_PROBABILITY, self.tr("Its probability")),
                                  self.tr("The calibrated probability (0 to 1) of the most likely family."))
        self.add_output_with_help(QgsProcessingOutputString(self.READING_JSON, self.tr("Reading (JSON)")),
                                  self.tr("The whole reading as JSON, as 'damp prompt --json' prints it under "
                                          "\"reading\": families (probabilities), top, present, severity, sentence, "
                                          "evidence, metrics."))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import METRIC_MEANINGS, prompt_map_raster, prompt_raster, read_raster

        source = self.input_raster(parameters, self.INPUT, context)
        prompt_map = self.output_path(parameters, self.PROMPT_MAP, context)
        prompt = prompt_raster(source, cancelled=feedback.isCanceled)
        for metric, value in prompt.metrics.items():
            feedback.pushInfo(f"{metric.upper():<5} {value:9.4f}  {METRIC_MEANINGS[metric]}")
        self.advance(feedback, 30 if prompt_map else 50)
        reading = read_raster(source, cancelled=feedback.isCanceled)
        feedback.pushInfo(reading.sentence)
        for line in reading.evidence:
            feedback.pushInfo(f"  · {line}")
        self.advance(feedback, 60 if prompt_map else 100)
        if prompt_map:
            prompt_map_raster(source, prompt_map, tile=self.parameterAsInt(parameters, self.TILE, context),
                              **self.callbacks(feedback, 60, 100))
        table = self.write_table(parameters, self.OUTPUT, context,
                                 {"raster": source, **prompt.to_dict(), **reading_row(reading)})
        return {self.OUTPUT: table, self.PROMPT_MAP: prompt_map,
                **{metric.upper(): value for metric, value in prompt.metrics.items()},
                self.READING: reading.sentence, self.TOP: reading.top, self.TOP_PROBABILITY: reading.probability,
                self.READING_JSON: json.dumps(reading.to_dict())}


def reading_row(reading) -> dict[str, Any]:
    """The reading's columns of the table: sentence, top family, probabilities, severities."""
    severity = reading.to_dict()["severity"]
    row: dict[str, Any] = {"reading": reading.sentence, "top": reading.top}
    row.update({f"p_{family}": float(p) for family, p in reading.families.items()})
    for key in SEVERITY_COLUMNS:
        value = severity.get(key)
        if key == "lost_bands":  # text, so that the column type does not depend on the raster
            row[key] = ",".join(map(str, value or []))
        else:
            row[key] = None if value is None else float(value)
    return row
