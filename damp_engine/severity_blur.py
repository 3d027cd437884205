"""Blur width and coarse pixels: derivative autocorrelation and block replication (closed-form, numpy).

Part of the severity estimators (``damp_engine.severity``). A Gaussian PSF of width s turns each
edge into a Gaussian of std s, whose derivative autocorrelation is ρ = exp(−1/(4 s²)), so
s = 1 / (2 √(−ln ρ)); coarse pixels copied onto a finer grid leave no differences inside their
f × f blocks.
"""
from __future__ import annotations

import numpy as np

FACTORS = (2, 3, 4, 5, 6, 8)  # coarse-pixel factors tested
REPLICATED = 0.05         # differences inside blocks below this share of those across: replicated
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.3548
DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # x, y, diagonal, anti-diagonal (row, column steps)


def _shift(a: np.ndarray, dy: int, dx: int, k: int) -> np.ndarray:
    """a[..., y + k·dy, x + k·dx] over the region where offsets 0..2 (k) all stay inside."""
    h, w = a.shape[-2:]
    y0 = k * dy if dy >= 0 else 0
    x0 = k * dx if dx >= 0 else -2 * dx + k * dx
    return a[..., y0:h - 2 * abs(dy) + y0, x0:w - 2 * abs(dx) + x0]


def derivative_correlation(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Lag-one autocorrelation ρ of the first differences along x, y and both diagonals, (4,).

    For each direction, d_k = x(p + k·step) − x(p + (k−1)·step); ρ = Σ d₁ d₂ / √(Σ d₁² Σ d₂²)
    over the samples whose three pixels are all measured, per band; the median over bands is
    returned. White noise gives −0.5, a sharp step about 0, an edge blurred by a Gaussian of
    std s gives exp(−L²/(4 s²)) with L the step length (1, or √2 along a diagonal).
    """
    keep = np.flatnonzero(~lost)
    if keep.size == 0:
        return np.full(len(DIRECTIONS), np.nan)
    xs, good = x[keep], ~bad[keep]
    rho = []
    for dy, dx in DIRECTIONS:
        p0, p1, p2 = (_shift(xs, dy, dx, k) for k in range(3))
        ok = _shift(good, dy, dx, 0) & _shift(good, dy, dx, 1) & _shift(good, dy, dx, 2)
        d1, d2 = (p1 - p0) * ok, (p2 - p1) * ok
        num = np.einsum("chw,chw->c", d1, d2, dtype=np.float64)
        den = np.sqrt(np.einsum("chw,chw->c", d1, d1, dtype=np.float64)
                      * np.einsum("chw,chw->c", d2, d2, dtype=np.float64))
        per_band = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        rho.append(float(np.nanmedian(per_band)) if np.isfinite(per_band).any() else np.nan)
    return np.asarray(rho)


def blur_sigma(rho: np.ndarray) -> np.ndarray:
    """The Gaussian PSF std s (pixels) for each direction's ρ: s = L / (2 √(−ln ρ)).

    L is the step length of the direction (1 along x and y, √2 along the diagonals). 0 where
    ρ ≤ 0 (no sign of blur); ρ is clipped below 0.999 so that s stays finite (≤ 16 L).
    """
    rho = np.asarray(rho, dtype=np.float64)
    step = np.array([np.hypot(dy, dx) for dy, dx in DIRECTIONS])
    clipped = np.clip(np.nan_to_num(rho, nan=0.0), 1e-12, 0.999)
    return np.where(np.nan_to_num(rho, nan=0.0) > 0, step / (2.0 * np.sqrt(-np.log(clipped))), 0.0)


def replication(x: np.ndarray, missing: np.ndarray, lost: np.ndarray) -> dict[int, float]:
    """For each factor f, how far the cube is from f × f block replication (0: exact, ≈1: none).

    With D_j the mean |difference| between columns j and j+1 (over bands and rows), a cube
    replicated by f at phase o has D_j = 0 wherever (j + 1 − o) is not a multiple of f. The
    ratio mean(D inside blocks) / mean(D across block borders), minimised over the phase, is
    computed for columns and for rows; the larger of the two is returned (both must hold).
    """
    keep = np.flatnonzero(~lost)
    out = {}
    if keep.size == 0:
        return {f: 1.0 for f in FACTORS}
    xs = x[keep]
    profiles = []
    for axis in (2, 1):
        d = np.abs(np.diff(xs, axis=axis))
        ok = ~(missing[:, 1:] | missing[:, :-1]) if axis == 2 else ~(missing[1:] | missing[:-1])
        d = np.where(ok[None], d, 0.0)
        counts = np.maximum(ok.sum(axis=0 if axis == 2 else 1), 1) * xs.shape[0]
        profiles.append(d.sum(axis=(0, 1 if axis == 2 else 2)) / counts)
    for f in FACTORS:
        ratios = []
        for profile in profiles:
            if profile.size < 2 * f:
                ratios.append(1.0)
                continue
            j = np.arange(profile.size)
            best = np.inf
            for phase in range(f):
                border = (j + 1 - phase) % f == 0
                across = profile[border].mean()
                inside = profile[~border].mean()
                best = min(best, inside / across if across > 0 else (0.0 if inside == 0 else np.inf))
            ratios.append(float(min(best, 1.0)))
        out[f] = max(ratios)
    return out


def coarse_factor(ratios: dict[int, float]) -> int:
    """The largest factor whose replication ratio is below ``REPLICATED`` (1: not coarse)."""
    found = [f for f, r in ratios.items() if r < REPLICATED]
    return max(found) if found else 1
