"""Noise σ per band and how it grows with the signal (closed-form, numpy).

Part of the severity estimators (``damp_engine.severity``): the finest Haar diagonal sub-band
HH₁ (Donoho & Johnstone 1994), which holds mostly noise, less what the neighbouring bands
explain (HySime's regression, in the wavelet domain); σ from a robust (90 %-trimmed) second
moment, then in intensity bins for the signal dependence (σ² ∝ μ^γ, σ² = gain·μ + floor²).
"""
from __future__ import annotations

import numpy as np

TRIM = 0.9                # the noise variance is the mean square of the smallest 90 % of coefficients ...
TRIMMED = 0.62302         # ... over E[z² | |z| < 1.6449] for z ~ N(0, 1)
NOISE_BINS = 8            # intensity bins of the signal-dependence fit
NEIGHBOURS = 4            # spectral neighbours that explain a band's texture (noise and stripes)
MIN_BLOCKS = 64           # fewest usable coefficients for a noise estimate


def haar_diagonal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finest Haar diagonal coefficients HH₁ and the 2 × 2 block means of each band.

    HH₁ = (x₀₀ − x₀₁ − x₁₀ + x₁₁) / 2 over non-overlapping 2 × 2 blocks: (C, H//2, W//2) each.
    The transform is orthonormal, so i.i.d. noise of std σ gives HH₁ of std σ.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    a, b = x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]
    c, d = x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]
    return (a - b - c + d) / 2.0, (a + b + c + d) / 4.0


def _any_in_blocks(mask: np.ndarray) -> np.ndarray:
    """(C, H//2, W//2): 2 × 2 blocks holding any True sample of ``mask``."""
    h, w = mask.shape[-2] // 2 * 2, mask.shape[-1] // 2 * 2
    return (mask[..., 0:h:2, 0:w:2] | mask[..., 0:h:2, 1:w:2] | mask[..., 1:h:2, 0:w:2]
            | mask[..., 1:h:2, 1:w:2])


def spectral_neighbours(bands: int, count: int = NEIGHBOURS) -> np.ndarray:
    """(bands, k): for each band the k nearest other bands along the spectrum (k = min(count, bands − 1)).

    Band b takes the k + 1 consecutive bands around it (shifted inwards at the ends), less itself.
    """
    k = min(count, bands - 1)
    if k <= 0:
        return np.zeros((bands, 0), dtype=int)
    b = np.arange(bands)
    first = np.clip(b - k // 2, 0, bands - 1 - k)
    window = first[:, None] + np.arange(k + 1)[None]
    return window[window != b[:, None]].reshape(bands, k)


def noise_coefficients(x: np.ndarray, bad: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise-only coefficients of each band: (residual, block means, usable) (C, N), β (C, k), neighbours (C, k).

    The finest Haar diagonal sub-band HH₁ keeps noise and removes the smooth scene, but fine
    texture leaks into it. That texture is shared by neighbouring bands while noise is not, so
    each band's HH₁ is regressed (least squares) on the HH₁ of its ``NEIGHBOURS`` nearest bands
    and the residual kept, as HySime (Bioucas-Dias & Nascimento 2008) does on the raw bands.
    Blocks with a sample in ``bad`` (gaps, dead lines, spikes) in the band or a neighbour are
    unusable. Where fewer than ``MIN_BLOCKS`` blocks are usable (dense gaps), horizontal pair
    differences (x₁ − x₀) / √2 stand in for HH₁.

    The residual of band b has variance σ_b² + Σ_k β_k² σ_k² (the neighbours' noise leaks in
    through the regression weights β); :func:`noise_estimates` removes that share.
    """
    bands = x.shape[0]
    skip = bad
    hh, mean = haar_diagonal(x)
    block_skip = _any_in_blocks(skip)
    if (~block_skip).reshape(bands, -1).sum(axis=1).min() < MIN_BLOCKS:
        hh = (x[..., 1:] - x[..., :-1]) / np.sqrt(2.0)
        mean = (x[..., 1:] + x[..., :-1]) / 2.0
        block_skip = skip[..., 1:] | skip[..., :-1]
    hh, mean, ok = hh.reshape(bands, -1), mean.reshape(bands, -1), ~block_skip.reshape(bands, -1)
    if bands < 2:
        return hh, mean, ok, np.zeros((bands, 0)), np.zeros((bands, 0), dtype=int)
    nb = spectral_neighbours(bands)
    usable = ok & ok[nb].all(axis=1)
    target = hh * usable
    design = hh[nb] * usable[:, None, :]                               # (C, k, N)
    gram = (design @ design.transpose(0, 2, 1)).astype(np.float64)     # (C, k, k)
    rhs = (design @ target[..., None]).astype(np.float64)               # (C, k, 1)
    ridge = 1e-9 * (np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-30) * np.eye(nb.shape[1])
    beta = np.linalg.solve(gram + ridge, rhs)[..., 0]                   # (C, k)
    residual = target - (beta[:, None, :].astype(hh.dtype) @ design)[:, 0, :]
    return residual, mean, usable, beta, nb


def _linear_fit(t: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise weighted least-squares line y ≈ slope·t + intercept: (slope, intercept), NaN if degenerate."""
    sw = w.sum(axis=1)
    tm = (w * t).sum(axis=1) / np.maximum(sw, 1e-30)
    ym = (w * y).sum(axis=1) / np.maximum(sw, 1e-30)
    stt = (w * (t - tm[:, None]) ** 2).sum(axis=1)
    sty = (w * (t - tm[:, None]) * (y - ym[:, None])).sum(axis=1)
    slope = np.where(stt > 0, sty / np.where(stt > 0, stt, 1.0), np.nan)
    return slope, ym - slope * tm


def noise_estimates(x: np.ndarray, bad: np.ndarray, lost: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise σ per band and how it grows with intensity: (σ, σ of the brightest
    eighth, γ, weight, gain, floor), each (C,), NaN (weight 0) where it cannot be told.

    σ² is a robust second moment of the band's noise coefficients: the mean of r² over the 90 %
    of them smallest in size, divided by what that trimmed mean is for a unit Gaussian
    (``TRIMMED``); unlike the MAD it stays right for photon noise at a few counts, whose
    coefficients are mostly exactly 0. The neighbours' noise leaked in by the regression is
    then taken out (three fixed-point passes of σ_b² = total_b − Σ_k β_k² σ_k²).

    For the signal dependence the usable coefficients of a band are split into ``NOISE_BINS``
    bins of equal count by their block mean μ, σ² is measured in each the same way (times the
    band's leak correction); γ is the least-squares slope of log σ² against log μ (0 for
    additive noise, 1 for photon noise, where σ² = μ / photons per unit), weighted by the spread
    of log μ over the bins (a band of nearly one intensity tells little); gain and floor fit
    σ² = gain·μ + floor² by least squares, the Poisson-Gaussian model (Foi et al. 2008).
    """
    bands = x.shape[0]
    sigma, bright, gamma, weight = (np.full(bands, np.nan) for _ in range(4))
    weight[:] = 0.0
    gain, floor = np.full(bands, np.nan), np.full(bands, np.nan)
    keep = np.flatnonzero(~lost)
    if keep.size == 0:
        return sigma, bright, gamma, weight, gain, floor
    residual, mean, usable, beta, nb = noise_coefficients(x[keep], bad[keep])
    size = np.abs(residual).astype(np.float64)
    count = usable.sum(axis=1)
    ordered = np.sort(np.where(usable, size, np.inf), axis=1)
    ordered[~np.isfinite(ordered)] = 0.0
    total = np.where(count >= MIN_BLOCKS, _trimmed_variance(ordered, np.zeros_like(count), count), np.nan)
    var = total.copy()
    if nb.size:
        for _ in range(3):
            leak = (beta ** 2 * np.nan_to_num(var)[nb]).sum(axis=1)
            var = np.maximum(total - leak, 0.25 * total)
    sigma[keep] = np.sqrt(var)
    correction = np.where(total > 0, var / np.where(total > 0, total, 1.0), np.nan)

    # NOISE_BINS bins of equal count per band, by block mean: the median μ and the σ² of each
    order = np.argsort(np.where(usable, mean, np.inf), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1)
    bin_of = np.where(usable, rank * NOISE_BINS // np.maximum(count, 1)[:, None], NOISE_BINS)
    per_bin = np.stack([(bin_of == k).sum(axis=1) for k in range(NOISE_BINS)], axis=1)  # (C, bins)
    start = np.cumsum(per_bin, axis=1) - per_bin
    middle = np.minimum(start + per_bin // 2, order.shape[1] - 1)
    level = np.take_along_axis(np.take_along_axis(mean, order, axis=1), middle, axis=1).astype(np.float64)
    unit = size.max(initial=0.0) + 1e-30  # |r| / unit < 1, so bin + |r| / unit sorts by bin, then |r|
    keyed = np.sort(bin_of + np.where(usable, size / unit, 0.0) * 0.999, axis=1)
    within = np.where(keyed < NOISE_BINS, (keyed - np.floor(keyed)) / 0.999 * unit, 0.0)
    var_bins = np.stack([_trimmed_variance(within, start[:, k], per_bin[:, k]) for k in range(NOISE_BINS)], axis=1)
    var_bins *= correction[:, None]
    enough = (per_bin >= 2).all(axis=1) & np.isfinite(correction)
    bright[keep] = np.where(enough, np.sqrt(var_bins[:, -1]), sigma[keep])

    slope, intercept = _linear_fit(level, var_bins, np.ones_like(level))
    ok = enough & np.isfinite(slope)
    gain[keep[ok]], floor[keep[ok]] = slope[ok], np.sqrt(np.maximum(intercept[ok], 0.0))
    positive = (level > 1e-3) & (var_bins > 0) & enough[:, None]
    log_level = np.log(np.where(positive, level, 1.0))
    log_var = np.log(np.where(positive, var_bins, 1.0))
    span = np.where(positive, log_level, -np.inf).max(axis=1) - np.where(positive, log_level, np.inf).min(axis=1)
    slope, _ = _linear_fit(log_level, log_var, positive.astype(float))
    ok = (positive.sum(axis=1) >= 3) & (span > 0.1) & np.isfinite(slope)
    gamma[keep[ok]], weight[keep[ok]] = slope[ok], span[ok]
    return sigma, bright, gamma, weight, gain, floor


def _trimmed_variance(ordered: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per row, the Gaussian-equivalent variance of the ``count`` values from ``start`` of a row
    sorted by size within each group: mean of the squares of the smallest 90 %, / ``TRIMMED``."""
    squares = np.cumsum(ordered ** 2, axis=1)
    squares = np.concatenate([np.zeros((ordered.shape[0], 1)), squares], axis=1)
    kept = np.maximum((TRIM * count).astype(int), 1)
    end = np.minimum(start + kept, ordered.shape[1])
    rows = np.arange(ordered.shape[0])
    total = squares[rows, end] - squares[rows, np.minimum(start, ordered.shape[1])]
    return np.where(count > 0, total / kept / TRIMMED, np.nan)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The weighted median of the finite ``values`` (NaN when none has weight)."""
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return float("nan")
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    cumulative = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
