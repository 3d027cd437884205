"""What a cube lacks: pixels without data, lost bands and dead lines (closed-form, numpy).

Part of the severity estimators (``damp_engine.severity``): the first ones :func:`~damp_engine.severity.measure`
runs, because every later estimator leaves out what these find.
"""
from __future__ import annotations

import numpy as np

ZERO = 1e-7               # |value| at or below this is an exact zero (scaled data, about [0, 1])
CONSTANT = 1e-6           # a band whose values span at most this is constant (lost)
SIGNAL = 0.01             # a column (row) mean over bands above this has signal (scaled units)
STARVED = 0.2             # share of zero samples around a zero spectrum from which it is photon-starved


def missing_pixels(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W): pixels with no valid band, or whose valid bands are all exactly 0 amid signal.

    A spectrum of zeros is no measurement (every real surface reflects something in some
    band): inpainting masks, dropped packets and fill values look like this. A photon-counting
    sensor in the dark, though, records zero in every band now and then, and then records many
    zeros around it too; so a zero spectrum counts as missing unless, among the pixels with data
    around it (5 × 5), more than ``STARVED`` of the samples are exactly 0.
    """
    holds = valid & (np.abs(x) > ZERO)
    none = ~valid.any(axis=0)
    zero = ~holds.any(axis=0) & ~none
    if not zero.any():
        return none
    has = ~(zero | none)
    zeros = (valid & ~holds).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)   # share of zero samples
    around, count = _box_sum(np.where(has, zeros, 0.0), 2), _box_sum(has.astype(np.float64), 2)
    starved = (count > 0) & (around > STARVED * count)
    return none | (zero & ~starved)


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of a 2-D array over (2r + 1)² boxes (zero outside), same shape."""
    padded = np.pad(a, r)
    c = padded.cumsum(axis=0).cumsum(axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = a.shape
    k = 2 * r + 1
    return c[k:k + h, k:k + w] - c[0:h, k:k + w] - c[k:k + h, 0:w] + c[0:h, 0:w]


def lost_bands(x: np.ndarray, valid: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """(C,): bands constant over every measured pixel (zeroed, stuck), or with no valid sample."""
    keep = valid & ~missing[None]
    high = np.where(keep, x, -np.inf).max(axis=(1, 2))
    low = np.where(keep, x, np.inf).min(axis=(1, 2))
    return ~keep.any(axis=(1, 2)) | (high - low <= CONSTANT)


def dead_lines(x: np.ndarray, valid: np.ndarray, missing: np.ndarray,
               lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which columns (C, W) and rows (C, H) of each band are dead.

    A line (column or row) is dead in band b when every measured pixel of it is exactly 0 in b
    while the scene has signal there (its mean over all bands exceeds ``SIGNAL``) and the band
    has few zeros elsewhere (under ``STARVED``; in a photon-starved band, zeros everywhere leave
    whole lines at zero by chance): a detector element that recorded nothing. Lost bands have
    no dead lines (they are lost whole).
    """
    measured = valid & ~missing[None]
    zero = (np.abs(x) <= ZERO) | ~measured
    signal = np.where(measured, x, 0.0).sum(axis=0)
    count = np.maximum(measured.sum(axis=0), 1)
    exact = measured & (np.abs(x) <= ZERO)
    lines = []
    for axis in (1, 2):  # columns: all rows zero (reduce axis 1); rows: reduce axis 2
        pixels = (~missing).sum(axis=axis - 1)  # measured pixels per line
        line_signal = signal.sum(axis=axis - 1) / np.maximum(count.sum(axis=axis - 1), 1)
        dead = zero.all(axis=axis) & (pixels >= 4)[None] & (line_signal > SIGNAL)[None]
        dead[lost] = False
        lines.append(dead)
    cols, rows = lines
    in_dead = cols[:, None, :] | rows[:, :, None]
    elsewhere = (exact & ~in_dead).sum(axis=(1, 2)) / np.maximum((measured & ~in_dead).sum(axis=(1, 2)), 1)
    starved = elsewhere > STARVED
    cols[starved], rows[starved] = False, False
    return cols, rows
