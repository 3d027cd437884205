"""The DAMP dock widget: degradation metrics, a plain reading and expert routing of the active layer."""
from __future__ import annotations

from .dock import DampDock

__all__ = ["DampDock"]
