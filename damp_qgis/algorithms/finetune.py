"""damp:finetune — fine-tune a DAMP model on the user's own (clean) rasters."""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from .base import MODEL_FILTER, DampAlgorithm


class FinetuneAlgorithm(DampAlgorithm):
    """Continue training a model on the given rasters, with degradations simulated on them."""

    STEPS = "STEPS"

    GROUP = "Training"
    HELP = ("Fine-tunes a DAMP model on your own rasters so that it fits your sensor and scenes. "
            "The rasters are taken as clean: at every step random crops are degraded with the "
            "training degradations (noise, blur, down-sampling, gaps, lost bands, stripes) and the "
            "model learns to undo them. The result is a new model file (.safetensors plus its "
            ".json card) that the Restore, Super-resolve and Routing algorithms accept as MODEL. "
            "A GPU makes this much faster; on a CPU start with a few hundred steps.")

    def name(self) -> str:
        return "finetune"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Fine-tune model")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterMultipleLayers(self.INPUT, self.tr("Clean training rasters"),
                                                      QgsProcessing.TypeRaster),
                 "One or more clean hyperspectral rasters (at least 3 bands each) of the kind you "
                 "want to restore.")
        self.add_model("Base model (empty: the bundled model)")
        self.add(QgsProcessingParameterNumber(self.STEPS, self.tr("Training steps"), defaultValue=300,
                                              minValue=1, maxValue=1_000_000),
                 "Optimisation steps, each on a batch of random crops of the rasters.")
        self.add_device()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("Fine-tuned model"), MODEL_FILTER),
                 "The new model, a .safetensors file; its .json model card is written beside it.")

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.train import finetune

        rasters = [self.check_raster(layer, self.INPUT) for layer in
                   self.parameterAsLayerList(parameters, self.INPUT, context)]
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        model = finetune(rasters, output, base=self.model_path(parameters, context),
                         steps=self.parameterAsInt(parameters, self.STEPS, context),
                         device=self.device(parameters, context), log=feedback.pushInfo,
                         **self.callbacks(feedback))
        return {self.OUTPUT: str(model)}
