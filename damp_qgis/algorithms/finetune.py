"""damp:finetune — fine-tune a DAMP model on the user's own (clean) rasters."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from .base import MODEL_FILTER, DampAlgorithm, tr


class FinetuneAlgorithm(DampAlgorithm):
    """Continue training a model on the given rasters, with degradations simulated on them."""

    STEPS = "STEPS"

    GROUP_ID = "training"
    TAGS = tr("hyperspectral,fine-tune,training,model,sensor,deep learning,DAMP")
    HELP = tr("Teaches the model your sensor and scenes: give it clean rasters of the kind you want to "
              "restore, and it practises on them by degrading random crops (noise, blur, coarser "
              "pixels, gaps, lost bands, stripes) and learning to undo that. The result is a new model "
              "file (.safetensors, with its .json card beside it) that Restore, Super-resolve and "
              "Routing map accept as their model.")
    NOTES = (tr("Time: a GPU makes this much faster; on a CPU start with a few hundred steps (a few "
                "minutes). The device is under Advanced parameters."),)

    def name(self) -> str:
        return "finetune"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Fine-tune model")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterMultipleLayers(self.INPUT, self.tr("Clean training rasters"),
                                                      QgsProcessing.TypeRaster),
                 self.tr("One or more clean hyperspectral rasters (at least 3 bands each) of the kind you "
                         "want to restore."))
        self.add_model(self.tr("Base model (empty: the bundled model)"))
        self.add(QgsProcessingParameterNumber(self.STEPS, self.tr("Training steps"), defaultValue=300,
                                              minValue=1, maxValue=1_000_000),
                 self.tr("Optimisation steps, each on a batch of random crops of the rasters."))
        self.add_device()
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT, self.tr("Fine-tuned model"), MODEL_FILTER),
                 self.tr("The new model, a .safetensors file; its .json model card is written beside it."))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import finetune_model

        rasters = [self.check_raster(layer, self.INPUT) for layer in
                   self.parameterAsLayerList(parameters, self.INPUT, context)]
        output = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        steps = self.parameterAsInt(parameters, self.STEPS, context)
        base = self.model_path(parameters, context)
        feedback.pushInfo(f"Fine-tuning {Path(base).stem if base else 'the bundled model'} on {len(rasters)} "
                          f"raster(s) for {steps} steps…")
        feedback.setProgressText(self.tr("Reading the rasters and the base model…"))
        model = finetune_model(rasters, output, base=base, steps=steps, device=self.device(parameters, context),
                               log=feedback.pushInfo,  # the loss every tenth of the run, the held-out check
                               **self.callbacks(feedback))
        feedback.pushInfo(f"Fine-tuned model written to {model} (model card: {Path(model).with_suffix('.json')}).")
        return {self.OUTPUT: str(model)}
