"""damp:simulate — write a degraded copy of a raster (seeded), for tests, benchmarks and training."""
from __future__ import annotations

import json
import re
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import DampAlgorithm, TrueColour, text_enum


def parse_parameters(text: str) -> dict[str, Any]:
    """'sigma=50, sigmas=[10, 30], extra=stripes' → {'sigma': 50, 'sigmas': [10, 30], 'extra': 'stripes'}.

    Values are read as JSON (numbers, lists) and otherwise kept as words.
    """
    params: dict[str, Any] = {}
    for item in re.split(r"[,;]\s*(?=[A-Za-z_]\w*\s*=)", text.strip()):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise QgsProcessingException(
                f"Bad degradation parameters: cannot read '{item.strip()}'. Write NAME=VALUE pairs "
                "separated by commas, e.g. sigma=50, ksize=9.")
        try:
            params[key.strip()] = json.loads(value.strip())
        except json.JSONDecodeError:
            params[key.strip()] = value.strip()
    return params


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

    GROUP = "Simulation"
    HELP = ("Writes a degraded copy of a raster with one of the degradations DAMP is trained and "
            "tested on (seeded, so the same seed gives the same result). Use it to see how the "
            "degradation prompt reacts, to test a restoration on data whose clean version you know "
            "(then score it with Evaluate quality), or to prepare fine-tuning data. Noise levels "
            "are in 0-255 units of the scaled [0, 1] data, as in the paper; nothing is clipped. "
            "The record of what was applied is stored in the output's metadata (DAMP_DEGRADATION).")

    def name(self) -> str:
        return "simulate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Simulate degradation")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        from damp_engine.names import KINDS, PARAMETERS

        defaults = "; ".join(f"{kind}: {format_defaults(PARAMETERS[kind])}" for kind in KINDS)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Clean raster")),
                 "The raster to degrade (at least 3 bands).")
        self.add(text_enum(self.KIND, self.tr("Degradation"), list(KINDS), KINDS[0]),
                 "The degradation to apply: " + ", ".join(KINDS) + ".")
        self.add(QgsProcessingParameterString(self.PARAMETERS, self.tr("Degradation parameters"),
                                              optional=True),
                 "Optional NAME=VALUE pairs separated by commas that override the defaults of the "
                 f"chosen degradation, e.g. sigma=30. Defaults — {defaults}.")
        self.add(QgsProcessingParameterNumber(self.SEED, self.tr("Random seed"), defaultValue=0, minValue=0),
                 "Seed of every random choice; the same seed gives the same degraded raster.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Degraded raster")),
                 "The degraded raster: float32, same grid, nodata and wavelengths as the input.")

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine.scene import degrade_raster

        source = self.input_raster(parameters, self.INPUT, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        record = degrade_raster(source, output, self.parameterAsEnumString(parameters, self.KIND, context),
                                seed=self.parameterAsInt(parameters, self.SEED, context),
                                **parse_parameters(self.parameterAsString(parameters, self.PARAMETERS, context)))
        feedback.pushInfo(f"Applied: {json.dumps(record.to_dict())}")
        TrueColour.attach(context, output)
        return {self.OUTPUT: output}
