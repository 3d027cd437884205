"""DAMP engine: degradation-aware hyperspectral restoration without QGIS.

This module is the engine's public API, the boundary that the `damp` command and the QGIS
plugin call: the raster operations, the parsers of the users' text inputs and the tiling
defaults. It is imported lazily, so that ``import damp_engine`` stays cheap (torch is loaded
only when a name that needs it is first used).

Names never shadow a submodule: ``damp_engine.degrade`` is always the module, and its cube
function is ``degrade_cube`` here (``damp_engine.degrade.degrade`` there); fine-tuning is
``finetune_model`` (``damp_engine.finetune.finetune``).
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import DampCancelled, DampInputError, one_line
from .limits import GPU_BATCH, DEFAULT_HALO, DEFAULT_TILE, MAX_HALO, MAX_TILE, MIN_HALO, MIN_TILE

__version__ = "0.1.0"

# public name -> "module" (same name there) or "module:name"
_API = {
    # rasters (what the CLI commands and the Processing algorithms run)
    "restore_raster": "damp_engine.tiling",
    "upscale_raster": "damp_engine.tiling",
    "routing_raster": "damp_engine.tiling",
    "prompt_map_raster": "damp_engine.tiling",
    "prompt_raster": "damp_engine.scene",
    "degrade_raster": "damp_engine.scene",
    "evaluate_rasters": "damp_engine.scene",
    "evaluate_degraded_part": "damp_engine.degradation_scores",
    "read_record": "damp_engine.degradation_scores",
    "read_raster": "damp_engine.reading",
    "inspect_raster": "damp_engine.inspect",
    "restore_batch": "damp_engine.batch",
    "finetune_model": "damp_engine.finetune:finetune",
    "load_model": "damp_engine.checkpoint",
    "open_raster": "damp_engine.raster",
    "RasterReader": "damp_engine.raster",
    # arrays
    "compute_prompt": "damp_engine.prompt",
    "degrade_cube": "damp_engine.degrade:degrade",
    "evaluate": "damp_engine.quality",
    "raster_convention": "damp_engine.quality",
    # the users' text inputs, parsed one way for the CLI and the plugin
    "parse_bands": "damp_engine.params",
    "parse_parameters": "damp_engine.params",
    # names and words shown to users (torch-free)
    "METRIC_NAMES": "damp_engine.names",
    "METRIC_TITLES": "damp_engine.names",
    "METRIC_MEANINGS": "damp_engine.names",
    "KINDS": "damp_engine.names",
    "PARAMETERS": "damp_engine.names",
    "FAMILIES": "damp_engine.names",
    "FAMILY_TITLES": "damp_engine.names",
}

__all__ = ["DampInputError", "DampCancelled", "one_line", "__version__", "DEFAULT_TILE", "DEFAULT_HALO",
           "GPU_BATCH", "MIN_TILE", "MAX_TILE", "MIN_HALO", "MAX_HALO", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        module, _, attribute = _API[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)
    raise AttributeError(f"module 'damp_engine' has no attribute {name!r}")
