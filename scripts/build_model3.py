"""Build resources/models/simulate_restore_evaluate.model3, the example model the DAMP provider ships.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/build_model3.py

The model degrades a clean raster (damp:simulate), restores it (damp:restore) and scores both the
degraded and the restored raster against the clean one (damp:evaluate), so one run shows what the
restoration gained. Its defaults show what the tool does well: Gaussian noise (σ = 50/255) on the
bundled EnMAP sample goes from about 15 to 29 dB PSNR. For degradations that touch only part of
the raster (band_loss, inpaint, stripes, ...) each quality table has a second row, the degraded
part alone. The toolbox lists it as "Simulate, restore and evaluate" (damp_qgis.provider); run it
as damp:simulate_restore_evaluate, open it in the Graphical Modeler, or:

    qgis_process.bin run damp:simulate_restore_evaluate -- clean=scene.tif \\
        simulate:degraded=degraded.tif restore:restored=restored.tif \\
        evaluate_degraded:scores_degraded=before.csv evaluate_restored:scores_restored=after.csv
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "resources" / "models" / "simulate_restore_evaluate.model3"

HELP = {
    "ALG_DESC": "Shows what the restoration does on data whose clean version you know: degrades a clean "
                "hyperspectral raster, restores the degraded copy with DAMP, and scores both against the "
                "clean raster (PSNR and SSIM: higher is better; SAM and ERGAS: lower is better). Compare "
                "the two tables: the restored raster should score better. The default, Gaussian noise, is "
                "what the model restores best; complex (noise with stripes, dead lines or impulses), "
                "inpaint (missing pixels) and band_loss (lost bands) work well too. When a degradation "
                "touches only part of the raster (lost bands, missing pixels, stripes), each table has a "
                "second row that scores that part alone, where the untouched rest cannot flatter the "
                "degraded raster. Open the outputs and compare their spectra in the DAMP dock. Reference: "
                "Degradation-Aware Metric Prompting for Hyperspectral Image Restoration, ICML 2026, "
                "arXiv:2512.20251.",
    "ALG_CREATOR": "DAMP for QGIS team",
    "clean": "A clean hyperspectral raster (at least 3 bands), e.g. resources/sample/enmap_potsdam_sample.tif.",
    "kind": "The degradation to simulate (see Simulate degradation). gaussian_noise (default), complex, "
            "inpaint and band_loss show the restoration at its best.",
    "parameters": "Optional NAME=VALUE pairs for the chosen degradation, e.g. sigma=30 for gaussian_noise; "
                  "empty for its defaults.",
    "seed": "Random seed of the degradation: the same seed gives the same degraded raster.",
    "model": "DAMP model file (.safetensors); empty for the bundled model.",
}


def build():
    """The model, built against the registered damp provider."""
    from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterFile, QgsProcessingParameterNumber,
                           QgsProcessingParameterRasterLayer, QgsProcessingParameterString)
    from qgis.PyQt.QtCore import QPointF

    from damp_engine.names import KINDS
    from damp_qgis.algorithms.base import MODEL_FILTER, text_enum

    model = QgsProcessingModelAlgorithm("simulate_restore_evaluate", "Workflows")
    inputs = [
        QgsProcessingParameterRasterLayer("clean", "Clean raster"),
        text_enum("kind", "Degradation", list(KINDS), KINDS[0]),
        QgsProcessingParameterString("parameters", "Degradation parameters", optional=True),
        QgsProcessingParameterNumber("seed", "Random seed", defaultValue=0, minValue=0),
        QgsProcessingParameterFile("model", "DAMP model (empty: the bundled model)", fileFilter=MODEL_FILTER,
                                   optional=True),
    ]
    for row, parameter in enumerate(inputs):
        component = QgsProcessingModelParameter(parameter.name())
        component.setPosition(QPointF(120, 60 + 70 * row))
        model.addModelParameter(parameter, component)

    def child(child_id: str, algorithm: str, description: str, position: tuple[int, int],
              sources: dict, output: tuple[str, str]) -> None:
        step = QgsProcessingModelChildAlgorithm(algorithm)
        step.setChildId(child_id)
        step.setDescription(description)
        step.setPosition(QPointF(*position))
        for parameter in step.algorithm().parameterDefinitions():  # the rest at their defaults
            if not parameter.isDestination():
                default = Source.fromStaticValue(parameter.defaultValue())
                step.addParameterSources(parameter.name(), [sources.get(parameter.name(), default)])
        name, title = output
        result = QgsProcessingModelOutput(name, title)
        result.setChildId(child_id)
        result.setChildOutputName("OUTPUT")
        result.setPosition(QPointF(position[0] + 200, position[1] + 40))
        step.setModelOutputs({name: result})
        model.addChildAlgorithm(step)

    child("simulate", "damp:simulate", "Simulate degradation", (420, 80),
          {"INPUT": Source.fromModelParameter("clean"), "KIND": Source.fromModelParameter("kind"),
           "PARAMETERS": Source.fromModelParameter("parameters"), "SEED": Source.fromModelParameter("seed")},
          ("degraded", "Degraded raster"))
    child("restore", "damp:restore", "Restore hyperspectral raster", (420, 240),
          {"INPUT": Source.fromChildOutput("simulate", "OUTPUT"), "MODEL": Source.fromModelParameter("model")},
          ("restored", "Restored raster"))
    child("evaluate_degraded", "damp:evaluate", "Evaluate the degraded raster", (760, 120),
          {"REFERENCE": Source.fromModelParameter("clean"), "INPUT": Source.fromChildOutput("simulate", "OUTPUT")},
          ("scores_degraded", "Quality of the degraded raster"))
    child("evaluate_restored", "damp:evaluate", "Evaluate the restored raster", (760, 320),
          {"REFERENCE": Source.fromModelParameter("clean"), "INPUT": Source.fromChildOutput("restore", "OUTPUT")},
          ("scores_restored", "Quality of the restored raster"))
    model.setHelpContent(HELP)
    model.updateDestinationParameters()
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the example model shipped with the DAMP provider.")
    parser.add_argument("output", nargs="?", type=Path, default=TARGET, help="the .model3 to write")
    target = parser.parse_args(argv).output
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["QT_HASH_SEED"] = "0"  # Qt writes XML attributes in hash order: make the file reproducible
    sys.path[:0] = [str(ROOT), "/usr/share/qgis/python/plugins"]
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    import damp_qgis

    plugin = damp_qgis.classFactory(None)
    plugin.initProcessing()
    model = build()
    ok, errors = model.validate()
    if not ok:
        print("the model does not validate:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    if not model.toFile(str(target)):
        print(f"cannot write {target}", file=sys.stderr)
        return 1
    print(f"wrote {target}")
    plugin.unload()
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
