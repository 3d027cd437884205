"""Robust global scaling of a raster to about [0, 1], the range the network and metrics expect.

One factor for all bands keeps the spectral shape. It is the 99.9th percentile of 3×3 local
means over a fixed grid of sample windows: the percentile ignores a few hot pixels, the local
mean keeps noise from inflating the factor (a noisy raster and its clean original get nearly the
same factor, as in training, where the factor comes from the clean raster), and the fixed grid
makes it deterministic.
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


def local_means(data: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3×3 box means of each band inside a window, and whether all nine samples were valid."""
    _, h, w = data.shape
    if h < 3 or w < 3:
        return data, valid
    shifts = [(i, j) for i in range(3) for j in range(3)]
    means = sum(data[:, i:h - 2 + i, j:w - 2 + j] for i, j in shifts) / 9.0
    ok = np.logical_and.reduce([valid[:, i:h - 2 + i, j:w - 2 + j] for i, j in shifts])
    return means, ok


def sample_values(reader: RasterReader, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Valid 3×3 local means (1-D) over the sample grid, and each band's count of valid samples.

    Bands flagged in `exclude` are counted but give no values (their data is known to be junk).
    Where no 3×3 neighbourhood is entirely valid, the valid samples themselves are returned.
    """
    keep = np.ones(reader.info.bands, bool) if exclude is None else ~exclude
    means, raw, counts = [], [], np.zeros(reader.info.bands, np.int64)
    for x0, y0, w, h in sample_grid(reader.info.width, reader.info.height):
        data, valid = reader.read(x0, y0, w, h)
        counts += valid.reshape(reader.info.bands, -1).sum(axis=1)
        local, ok = local_means(data[keep], valid[keep])
        means.append(local[ok])
        raw.append(data[keep][valid[keep]])
    values = np.concatenate(means)
    return (values if values.size else np.concatenate(raw)), counts


@dataclass(frozen=True)
class Scaling:
    """How a raster maps to the network's range: divide by `factor`; `good_bands` hold data."""

    factor: float
    good_bands: np.ndarray


def measure_scaling(reader: RasterReader, exclude: np.ndarray | None = None) -> Scaling:
    """The factor that maps the raster's values to about [0, 1], and which bands hold any data.

    `exclude` flags bands left out of the factor (e.g. bands the user marked bad).
    """
    values, counts = sample_values(reader, exclude)
    if values.size == 0:
        raise DampInputError(f"{reader.info.path} has no valid pixels (everything is nodata or NaN); "
                             "check its nodata value or choose another raster.")
    top = float(np.percentile(values, PERCENTILE))
    if not np.isfinite(top) or top <= 0:
        top = float(np.max(np.abs(values)))
    if top <= 0:
        raise DampInputError(f"{reader.info.path} is zero everywhere; there is nothing to restore.")
    return Scaling(factor=top, good_bands=counts > 0)
