"""How outputs arrive in the project: named after their input, rasters drawn in true colour.

Every output a DAMP algorithm loads is called "<input> — <what>" ("scene — restored",
"scene — degraded (stripes)", "scene — routing map"), so that a restoration sits beside its
input in the Layers panel under a name that says what it is, and the dock's spectral profile
finds the layers derived from the active one by that name.
"""
from __future__ import annotations

from qgis.core import (QgsMapLayer, QgsProcessingContext, QgsProcessingFeedback,
                       QgsProcessingLayerPostProcessorInterface, QgsRasterLayer)

from .rendering import show_true_colour

SEPARATOR = " — "  # between the input's name and what the output is


def derived_name(input_name: str, what: str) -> str:
    """"scene", "restored" → "scene — restored"."""
    return f"{input_name}{SEPARATOR}{what}"


def is_derived(name: str, source_name: str) -> bool:
    """Whether a layer called ``name`` was made from one called ``source_name`` (at any remove:
    "scene — degraded (noise) — restored" derives from "scene" and from "scene — degraded (noise)")."""
    return name.startswith(source_name + SEPARATOR)


class OutputLayer(QgsProcessingLayerPostProcessorInterface):
    """Gives a loaded output its name and, for a raster with wavelengths, the true-colour rendering.

    QGIS keeps only a pointer to a post-processor, so every instance stays referenced in
    ``_alive`` (one per output path) until the next run that writes the same path.
    """

    _alive: dict[str, "OutputLayer"] = {}

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,  # noqa: N802 (QGIS API)
                         feedback: QgsProcessingFeedback) -> None:
        layer.setName(self.name)
        if isinstance(layer, QgsRasterLayer):
            show_true_colour(layer)

    @classmethod
    def name_in_run(cls, context: QgsProcessingContext, path: str) -> str | None:
        """The name an earlier step of this run gave the output ``path`` (a model's intermediate
        result, read by the next step), None if it has none."""
        if path in cls._alive and context.willLoadLayerOnCompletion(path):
            return context.layerToLoadOnCompletionDetails(path).name or None
        return None

    @classmethod
    def attach(cls, context: QgsProcessingContext, path: str | None, name: str) -> None:
        """Name the output ``path`` (and draw it in true colour) if QGIS loads it after the run."""
        if not path or not context.willLoadLayerOnCompletion(path):
            return
        details = context.layerToLoadOnCompletionDetails(path)
        details.name = name
        details.forceName = True  # over the "use file name as layer name" setting: the name says what it is
        post = cls._alive[path] = cls(name)
        details.setPostProcessor(post)
