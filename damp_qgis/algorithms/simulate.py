"""damp:simulate — write a degraded copy of a raster (seeded), for tests, benchmarks and training."""
from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from damp_engine import parse_parameters  # one parser for the plugin and `damp degrade --param`

from .base import DampAlgorithm, text_enum, tr


def format_defaults(defaults: dict[str, object]) -> str:
    """{'sigma': 50.0, 'sigmas': [10.0, 30.0]} → 'sigma=50, sigmas=[10, 30]'."""
    def text(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(text(v) for v in value) + "]"
        return str(value)

    return ", ".join(f"{key}={text(value)}" for key, value in defaults.items())


class SimulateAlgorithm(DampAlgorithm):
    """Apply one synthetic degradation of damp_engine.degrade to a (clean) raster."""

    KIND, PARAMETERS, SEED = "KIND", "PARAMETERS", "SEED"

    GROUP_ID = "simulation"
    TAGS = tr("hyperspectral,simulation,degradation,noise,blur,stripes,inpainting,band loss,benchmark,DAMP")
    HELP = tr("Writes a degraded copy of a clean raster, to see what the restoration can do on data "
              "whose clean version you know: restore the copy, then score both against the clean "
              "raster with Evaluate quality (or run the Simulate, restore and evaluate workflow). Also "
              "useful to see how the degradation measures react, or to prepare fine-tuning data. The "
              "same seed gives the same result. Noise levels are in 0-255 units of the data scaled to "
              "[0, 1], as in the paper; nothing is clipped. What was applied, with every parameter, is "
              "stored in the output's metadata (DAMP_DEGRADATION); Evaluate quality reads it to score "
              "the degraded bands and pixels on their own. The output opens as “<input> — degraded (<kind>)”.")
    NOTES = (tr("Good examples of what the restoration handles: gaussian_noise (sigma=30), complex, "
                "inpaint (missing pixels) and band_loss (lost bands, judged by the degraded part's score)."),)

    def name(self) -> str:
        return "simulate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Simulate degradation")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        from damp_engine import KINDS, PARAMETERS

        defaults = "; ".join(f"{kind}: {format_defaults(PARAMETERS[kind])}" for kind in KINDS)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Clean raster")),
                 self.tr("The raster to degrade (at least 3 bands)."))
        self.add(text_enum(self.KIND, self.tr("Degradation"), list(KINDS), KINDS[0]),
                 self.tr("The degradation to apply: {kinds}.").format(kinds=", ".join(KINDS)))
        self.add(QgsProcessingParameterString(self.PARAMETERS, self.tr("Degradation parameters"),
                                              optional=True),
                 self.tr("Optional NAME=VALUE pairs separated by commas that override the defaults of the "
                         "chosen degradation, e.g. sigma=30. Defaults — {defaults}.").format(defaults=defaults))
        self.add(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"), defaultValue=0, minValue=0),
                 self.tr("Seed of every random choice; the same seed gives the same degraded raster."))
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Degraded raster")),
                 self.tr("The degraded raster: float32, same grid, nodata and wavelengths as the input."))

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import degrade_raster

        source = self.input_raster(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        kind = self.parameterAsEnumString(parameters, self.KIND, context)
        params = parse_parameters(self.parameterAsString(parameters, self.PARAMETERS, context))
        record = degrade_raster(source, output, kind, seed=self.parameterAsInt(parameters, self.SEED, context),
                                **{**params, **self.callbacks(feedback)})
        feedback.pushInfo(f"Applied {kind.replace('_', ' ')} with {format_defaults(record.params)} "
                          f"(seed {record.seed}) to {len(record.bands)} band(s)"
                          + (f", {100 * record.pixel_fraction:.2g} % of the values." if record.pixel_fraction
                             else "."))
        self.details_log(context, feedback)(f"Record: {json.dumps(record.to_dict())}")
        self.load_as(context, output, self.output_name(parameters, context, f"degraded ({kind.replace('_', ' ')})"))
        return {self.OUTPUT: output}
