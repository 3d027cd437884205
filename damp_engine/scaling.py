"""Robust global scaling of a raster to about [0, 1], the range the network and metrics expect.

One factor for all bands keeps the spectral shape; the 99.9th percentile of a fixed grid of
sample windows ignores a few hot pixels and is deterministic (no random sampling).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DampInputError
from .raster import RasterReader

PERCENTILE = 99.9


def sample_grid(width: int, height: int, window: int = 16, count: int = 16) -> list[tuple[int, int, int, int]]:
    """Up to count×count windows of window×window pixels spread evenly over the raster."""
    w, h = min(window, width), min(window, height)
    xs = np.unique(np.linspace(0, width - w, num=min(count, max(1, width // w))).round().astype(int))
    ys = np.unique(np.linspace(0, height - h, num=min(count, max(1, height // h))).round().astype(int))
    return [(int(x), int(y), w, h) for y in ys for x in xs]


def sample_values(reader: RasterReader) -> tuple[np.ndarray, np.ndarray]:
    """Valid sample values (1-D) and the per-band count of valid samples, from the sample grid."""
    values, counts = [], np.zeros(reader.info.bands, np.int64)
    for x0, y0, w, h in sample_grid(reader.info.width, reader.info.height):
        data, valid = reader.read(x0, y0, w, h)
        values.append(data[valid])
        counts += valid.reshape(reader.info.bands, -1).sum(axis=1)
    return np.concatenate(values), counts


@dataclass(frozen=True)
class Scaling:
    """How a raster maps to the network's range: divide by `factor`; `good_bands` hold data."""

    factor: float
    good_bands: np.ndarray


def measure_scaling(reader: RasterReader) -> Scaling:
    """The factor that maps the raster's values to about [0, 1], and which bands hold any data."""
    values, counts = sample_values(reader)
    if values.size == 0:
        raise DampInputError(f"{reader.info.path} has no valid pixels (everything is nodata or NaN); "
                             "check its nodata value or choose another raster.")
    top = float(np.percentile(values, PERCENTILE))
    if not np.isfinite(top) or top <= 0:
        top = float(np.max(np.abs(values)))
    if top <= 0:
        raise DampInputError(f"{reader.info.path} is zero everywhere; there is nothing to restore.")
    return Scaling(factor=top, good_bands=counts > 0)
