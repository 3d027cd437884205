"""The validity mask (DESIGN §4a.1): which samples of a cube are measurements and which are missing.

Missing samples are facts, not degradations to guess. A sample is invalid when the reader says
so (nodata, NaN/Inf), when its whole spectrum is exactly zero (a gap), when its band holds no
data in the scene (a lost or bad band), or when it lies on a dead line: a column or row of one
band that is exactly zero along the whole window while the band has data elsewhere.

Pixels that the reader marks nodata in every band are *void*: they stay nodata in the output
(swath edges, masked areas). Zero spectra and the user's mask are *gaps*: they are filled.
"""
from __future__ import annotations

import numpy as np

MIN_LINE = 8  # a dead line must span at least this many pixels of the window


def validity_mask(cube: np.ndarray, valid: np.ndarray, lost_bands: np.ndarray | None = None,
                  fill: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(valid (C, H, W), void (H, W)) of a window read from a raster.

    cube:        (C, H, W) values (invalid samples may hold anything).
    valid:       (C, H, W) bool from the reader (nodata, NaN).
    lost_bands:  (C,) bool, bands without data in the scene (or marked bad), or None.
    fill:        (H, W) bool, the user's mask of pixels to fill, or None.
    """
    void = ~valid.any(axis=0)
    ok = valid.copy()
    zero = (cube == 0) | ~valid
    ok &= ~zero.all(axis=0)[None]
    if lost_bands is not None:
        ok[lost_bands] = False
    _, h, w = cube.shape
    if h >= MIN_LINE:
        ok &= ~(zero.all(axis=1, keepdims=True) & ~void.all(axis=0, keepdims=True)[None])
    if w >= MIN_LINE:
        ok &= ~(zero.all(axis=2, keepdims=True) & ~void.all(axis=1, keepdims=True)[None])
    if fill is not None:
        ok[:, fill] = False
        void &= ~fill
    return ok, void
