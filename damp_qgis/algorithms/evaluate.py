"""damp:evaluate — full-reference quality of a raster: PSNR, SSIM, SAM, ERGAS, for the whole raster and
for its degraded part alone."""
from __future__ import annotations

import math
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm, tr

SCORES = {  # key: (title, meaning), for the whole raster
    "PSNR": (tr("Peak signal-to-noise ratio (dB)"),
             tr("Per band, averaged over bands, capped at 100 dB; higher is better.")),
    "SSIM": (tr("Structural similarity"), tr("Per band (7×7 window), averaged over bands; 1 is identical.")),
    "SAM": (tr("Spectral angle mapper (degrees)"),
            tr("Mean angle between reference and test spectra; lower is better.")),
    "ERGAS": (tr("ERGAS"), tr("Relative dimensionless global error; lower is better.")),
}
PART_SUFFIX = "_DEGRADED_PART"  # PSNR_DEGRADED_PART, ...: the scores of the degraded part alone
WHOLE, PART = "whole raster", "degraded part"


class EvaluateAlgorithm(DampAlgorithm):
    """Score a raster against a clean reference on the same grid, whole and on its degraded part."""

    REFERENCE = "REFERENCE"

    GROUP_ID = "analysis"
    TAGS = tr("hyperspectral,quality,evaluate,PSNR,SSIM,SAM,ERGAS,reference,benchmark,DAMP")
    HELP = tr("Says how close a raster (e.g. a restored one) is to a clean reference on the same grid, "
              "with four standard scores: PSNR and SSIM (higher is better), SAM, the spectral angle, and "
              "ERGAS (lower is better).")
    NOTES = (tr("When the raster carries the record of a simulated degradation (it was made by Simulate "
                "degradation, or restored from such a raster), a second row scores only the values that "
                "degradation changed, e.g. the lost bands, the missing pixels or the striped columns: "
                "there the untouched rest cannot flatter the degraded raster, and the restored one is "
                "judged where it had work to do. Degradations that change every value (noise, blur) have "
                "no second row: the whole raster is their degraded part."),
             tr("The whole raster is scored as the field does: the peak of PSNR is the reference's maximum "
                "over the scored pixels, both rasters are divided by it and neither is clipped, so a raster "
                "scored against itself gets 100 dB (the cap), SSIM 1, SAM 0 and ERGAS 0; the log states the "
                "peak. Pixels invalid in either raster and bands without data in the reference are left out."))

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Evaluate quality")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Clean reference raster")),
                 self.tr("The clean (ground-truth) raster."))
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Raster to score")),
                 self.tr("The raster to score, e.g. a restored one: same bands, rows and columns as the reference."))
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Quality table"), QgsProcessing.TypeVector),
                 self.tr("A table without geometry (e.g. a .csv file): reference, raster, part (“whole raster”, "
                         "then “degraded part” when the raster records its degradation), kind, bands, share (of "
                         "the values scored), psnr, ssim, sam and ergas."))
        for key, (title, meaning) in SCORES.items():
            self.add_output_with_help(QgsProcessingOutputNumber(key, title), meaning)
        for key, (title, meaning) in SCORES.items():
            self.add_output_with_help(
                QgsProcessingOutputNumber(key + PART_SUFFIX, self.tr("{title}, degraded part").format(title=title)),
                self.tr("{meaning} Only the values the recorded degradation changed; empty without a record or "
                        "when it changed every value.").format(meaning=meaning))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import evaluate_degraded_part, evaluate_rasters, open_raster, raster_convention, read_record

        reference = self.input_raster(parameters, self.REFERENCE, context)
        test = self.input_raster(parameters, self.INPUT, context)
        values = evaluate_rasters(reference, test)
        scores = {key: values[key.lower()] for key in SCORES}
        record = read_record(test)
        self.advance(feedback, 50 if record else 90)
        rows = [{"reference": reference, "raster": test, "part": WHOLE, "kind": record["kind"] if record else "",
                 "bands": open_raster(test).bands, "share": 1.0, **{k.lower(): v for k, v in scores.items()}}]
        self.report(feedback, WHOLE, scores)
        feedback.pushInfo(raster_convention(values["peak"]))
        part = evaluate_degraded_part(reference, test, record) if record else None
        part_scores = dict.fromkeys(SCORES)
        if part is not None:
            part_scores = {key: part.scores[key.lower()] for key in SCORES}
            rows.append({"reference": reference, "raster": test, "part": PART, "kind": part.part.kind,
                         "bands": part.bands_scored, "share": part.part.share,
                         **{k.lower(): v for k, v in part_scores.items()}})
            self.report(feedback, f"{PART} ({part.describe()})", part_scores)
        self.advance(feedback, 90)
        table = self.write_table(parameters, self.OUTPUT, context, rows)
        feedback.setProgress(100)
        self.load_as(context, table, self.output_name(parameters, context, "quality"))
        return {self.OUTPUT: table, **scores, **{key + PART_SUFFIX: value for key, value in part_scores.items()}}

    @staticmethod
    def report(feedback: QgsProcessingFeedback, title: str, scores: dict[str, float | None]) -> None:
        """Log one block of scores: a title line, then one line per score."""
        feedback.pushInfo(f"{title[:1].upper()}{title[1:]}:")
        for key, value in scores.items():
            text = "n/a" if value is None or math.isnan(value) else f"{value:10.4f}"
            feedback.pushInfo(f"  {key:<6} {text}  {SCORES[key][0]}")
