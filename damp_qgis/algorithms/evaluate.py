"""damp:evaluate — full-reference quality of a raster: PSNR, SSIM, SAM, ERGAS."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterLayer,
)

from .base import DampAlgorithm

SCORES = {
    "PSNR": ("Peak signal-to-noise ratio (dB)", "Per band with data range 1, averaged over bands; higher is better."),
    "SSIM": ("Structural similarity", "Per band (7×7 window), averaged over bands; 1 is identical."),
    "SAM": ("Spectral angle mapper (degrees)", "Mean angle between reference and test spectra; lower is better."),
    "ERGAS": ("ERGAS", "Relative dimensionless global error; lower is better."),
}


class EvaluateAlgorithm(DampAlgorithm):
    """Score a raster against a clean reference on the same grid."""

    REFERENCE = "REFERENCE"

    GROUP = "Analysis"
    HELP = ("Scores a raster (e.g. a restored one) against a clean reference on the same grid with "
            "PSNR, SSIM, SAM and ERGAS. Both are scaled to about [0, 1] by the reference's robust "
            "scale factor and the test is clipped to [0, 1]; pixels invalid in either raster and "
            "bands without data in the reference are left out. The result is a one-row table plus "
            "one numeric output per score.")

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Evaluate quality")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Clean reference raster")),
                 "The clean (ground-truth) raster.")
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Raster to score")),
                 "The raster to score, e.g. a restored one: same bands, rows and columns as the reference.")
        self.add(QgsProcessingParameterFeatureSink(self.OUTPUT, self.tr("Quality table"), QgsProcessing.TypeVector),
                 "A table without geometry (e.g. a .csv file) with one row: reference, raster, psnr, "
                 "ssim, sam and ergas.")
        for key, (title, meaning) in SCORES.items():
            self.add_output_with_help(QgsProcessingOutputNumber(key, self.tr(title)), meaning)

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.scene import evaluate_rasters

        reference = self.input_raster(parameters, self.REFERENCE, context)
        test = self.input_raster(parameters, self.INPUT, context)
        values = evaluate_rasters(reference, test)
        scores = {key: values[key.lower()] for key in SCORES}
        for key, value in scores.items():
            feedback.pushInfo(f"{key:<6} {value:10.4f}  {SCORES[key][0]}")
        table = self.write_table(parameters, self.OUTPUT, context,
                                 {"reference": reference, "raster": test,
                                  **{key.lower(): value for key, value in scores.items()}})
        return {self.OUTPUT: table, **scores}
