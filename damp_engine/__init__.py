"""DAMP engine: degradation-aware hyperspectral restoration without QGIS.

The public API is small and imported lazily, so that `import damp_engine` stays cheap
(torch is loaded only when a function that needs it is called).
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import DampCancelled, DampInputError

__version__ = "0.1.0"

_API = {
    "compute_prompt": "damp_engine.prompt",
    "degrade": "damp_engine.degrade",
    "evaluate": "damp_engine.quality",
    "load_model": "damp_engine.checkpoint",
    "prompt_raster": "damp_engine.scene",
    "degrade_raster": "damp_engine.scene",
    "evaluate_rasters": "damp_engine.scene",
    "restore_raster": "damp_engine.tiling",
    "upscale_raster": "damp_engine.tiling",
    "finetune": "damp_engine.train",
}

__all__ = ["DampInputError", "DampCancelled", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'damp_engine' has no attribute {name!r}")
