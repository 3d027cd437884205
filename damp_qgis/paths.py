"""Where the plugin finds its resources: icons, the bundled model and the example models.

``resources/`` sits beside the ``damp_engine`` package, both in a development checkout and in
the plugin ZIP (``vendor/damp_engine`` + ``vendor/resources``); the engine finds the bundled
model by the same rule (``damp_engine.checkpoint.DEFAULT_MODEL``).
"""
from __future__ import annotations

from pathlib import Path

import damp_engine

RESOURCES = Path(damp_engine.__file__).resolve().parent.parent / "resources"
ICONS = RESOURCES / "icons"
MODELS = RESOURCES / "models"


def icon_path(name: str) -> str:
    """The path of ``resources/icons/<name>.svg``."""
    return str(ICONS / f"{name}.svg")
