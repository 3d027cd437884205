"""Stripes and impulses: line offsets that neighbouring bands do not share, isolated spikes (numpy).

Part of the severity estimators (``damp_engine.severity``): a one-way analysis of variance of each
band's spectral residual with its lines as groups (stripes), and samples beyond all 8 neighbours
that reach the band's extremes (salt-and-pepper, hot or dead detector samples).
"""
from __future__ import annotations

import numpy as np

from .severity_noise import spectral_neighbours

IMPULSE_SIGMAS = 4.0      # an impulse exceeds its 8 neighbours by 4 σ of their scatter ...
EXTREME = 99.0            # ... and reaches the band's 99th (1st) percentile
SATURATED = 0.5           # ... and, if high, half the raster's scale (a hot sample saturates)
SCATTER_TO_SIGMA = 1.0 / 0.5971  # E[std of the 6 middle of 8 N(0, 1) samples] = 0.5971 (simulated)
IMPULSE_MARGIN = 0.1      # ... plus this much (scaled units; a photon-counting sample among zeros is less)
STRIPE_WINDOW = 7         # running median of the line profiles


def _running_median(profiles: np.ndarray, window: int) -> np.ndarray:
    """Running median along the last axis with reflected ends (same shape)."""
    half = window // 2
    if profiles.shape[-1] <= half:
        return np.broadcast_to(np.median(profiles, axis=-1, keepdims=True), profiles.shape).copy()
    padded = np.pad(profiles, [(0, 0)] * (profiles.ndim - 1) + [(half, half)], mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window, axis=-1), axis=-1)


def stripe_profiles(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the stripe F ratio of its columns and of its rows, (C,) each (NaN for lost bands).

    A stripe is an offset added to a whole column (or row) of one band. The scene's own
    structure, shared by neighbouring bands, is first removed: each band is regressed (least
    squares, with a constant) on its ``NEIGHBOURS`` nearest bands and the residual kept. Then a
    one-way analysis of variance with the lines as groups: F = the mean square of the line
    means of the residual (high-passed by a 7-line running median, so slow shading does not
    count) over the variance a line mean would have from the scatter within lines, the latter
    widened by (1 + ρ)/(1 − ρ) for the residual's lag-one correlation ρ along the lines (blur
    along a line makes its samples less independent). Noise gives F ≈ 1, stripes F ≫ 1. Samples
    in ``bad`` (gaps, dead lines) are left out; lines with too few samples left are
    interpolated and not counted.
    """
    bands = x.shape[0]
    col, row = np.full(bands, np.nan), np.full(bands, np.nan)
    keep = np.flatnonzero(~lost)
    if keep.size < 2:
        return col, row
    xs = x[keep]
    good = ~bad[keep]
    c, h, w = xs.shape
    nb = spectral_neighbours(c)
    flat, ok = xs.reshape(c, -1), good.reshape(c, -1)
    use = ok & ok[nb].all(axis=1)
    design = np.concatenate([flat[nb], np.ones((c, 1, flat.shape[1]), flat.dtype)], axis=1) * use[:, None, :]
    target = flat * use
    gram = (design @ design.transpose(0, 2, 1)).astype(np.float64)
    rhs = (design @ target[..., None]).astype(np.float64)
    ridge = 1e-9 * (np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-30) * np.eye(gram.shape[1])
    beta = np.linalg.solve(gram + ridge, rhs)[..., 0]
    residual = ((target - (beta[:, None, :].astype(flat.dtype) @ design)[:, 0, :]) * use).reshape(c, h, w)
    use = use.reshape(c, h, w)
    for axis, out in ((1, col), (2, row)):
        n = use.sum(axis=axis).astype(np.float64)                        # (C, lines)
        line_ok = n >= max(4, 0.25 * xs.shape[axis])
        lines = line_ok.sum(axis=1)
        if lines.max(initial=0) < STRIPE_WINDOW:
            continue
        means = residual.sum(axis=axis, dtype=np.float64) / np.maximum(n, 1)
        squares = (residual.astype(np.float64) ** 2).sum(axis=axis) / np.maximum(n, 1)
        spread = np.maximum(squares - means ** 2, 0.0) / np.maximum(n - 1, 1)  # variance of a line mean
        spread *= _correlation_inflation(residual, use, along=3 - axis)[:, None]
        positions = np.arange(means.shape[1])
        profiles = np.array([np.interp(positions, positions[o], m[o]) if o.any() else m
                             for m, o in zip(means, line_ok)])
        high = np.where(line_ok, profiles - _running_median(profiles, STRIPE_WINDOW), 0.0)
        between = (high ** 2).sum(axis=1) / np.maximum(lines, 1)
        within = np.where(line_ok, spread, 0.0).sum(axis=1) / np.maximum(lines, 1)
        ratio = between / np.maximum(within, 1e-20)
        out[keep] = np.where((lines >= STRIPE_WINDOW) & (within > 0), ratio, np.nan)
    return col, row


def _correlation_inflation(residual: np.ndarray, use: np.ndarray, along: int) -> np.ndarray:
    """Per band, (1 + ρ)/(1 − ρ) for the lag-one correlation ρ ∈ [0, 0.98] of ``residual`` along
    axis ``along`` (1: rows, down a column; 2: columns, along a row): how much more a line mean
    varies than for independent samples."""
    if along == 1:
        a, b, ok = residual[:, :-1], residual[:, 1:], use[:, :-1] & use[:, 1:]
    else:
        a, b, ok = residual[..., :-1], residual[..., 1:], use[..., :-1] & use[..., 1:]
    num = np.einsum("chw,chw->c", a * ok, b, dtype=np.float64)
    den = np.sqrt(np.einsum("chw,chw->c", a * ok, a, dtype=np.float64)
                  * np.einsum("chw,chw->c", b * ok, b, dtype=np.float64))
    rho = np.clip(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0), 0.0, 0.98)
    return (1 + rho) / (1 - rho)


def impulses(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isolated spikes such as salt-and-pepper or hot/dead detector samples: (mask (C, H, W), share (C,)).

    A spike lies above all 8 neighbours (or below all of them) by more than 4 σ + 0.1, σ the
    local scatter of the neighbours (the std of the 6 middle ones, rescaled to a Gaussian σ: the
    noise and texture there, so that noise growing with the signal does not pass for spikes;
    unlike their MAD it is not 0 for photon counts of a few levels), and reaches the
    band's extremes as a saturated (hot) or dead detector sample does: a high one at least the
    band's 99th percentile and half the raster's scale (``SATURATED``), a low one at most the
    band's 1st percentile, so that the odd photon among dark neighbours does not pass for one
    either. Neighbours that are gaps do not count; a sample needs at least 5 measured
    neighbours. The share is per band, over the samples tested.
    """
    mask = np.zeros(x.shape, bool)
    share = np.zeros(x.shape[0])
    keep = np.flatnonzero(~lost)
    if min(x.shape[-2:]) < 3 or keep.size == 0:
        return mask, share
    v, g = x[keep], ~bad[keep]
    h, w = v.shape[-2:]
    windows = [(slice(None), slice(1 + dy, h - 1 + dy), slice(1 + dx, w - 1 + dx))
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    around = np.stack([v[window] for window in windows], axis=-1)        # (C, h-2, w-2, 8)
    seen = np.stack([g[window] for window in windows], axis=-1)
    high = np.where(seen, around, -np.inf).max(axis=-1)                 # gaps never win a max or a min
    low = np.where(seen, around, np.inf).min(axis=-1)
    middle = np.sort(around, axis=-1)[..., 1:-1]                        # the 6 middle neighbours
    scatter = middle.std(axis=-1) * SCATTER_TO_SIGMA
    ok = g[:, 1:-1, 1:-1] & (seen.sum(axis=-1) >= 5)
    del around, seen, middle
    centre = v[:, 1:-1, 1:-1]
    margin = IMPULSE_SIGMAS * scatter + IMPULSE_MARGIN
    measured = np.where(g, v, np.nan).reshape(keep.size, -1)
    with np.errstate(all="ignore"):
        top = np.nanpercentile(measured, EXTREME, axis=1)[:, None, None]
        bottom = np.nanpercentile(measured, 100 - EXTREME, axis=1)[:, None, None]
    salt = (centre - high > margin) & (centre >= np.maximum(top, SATURATED))
    pepper = (low - centre > margin) & (centre <= bottom)
    spikes = ok & (salt | pepper)
    mask[keep, 1:-1, 1:-1] = spikes
    share[keep] = spikes.sum(axis=(1, 2)) / np.maximum(ok.sum(axis=(1, 2)), 1)
    return mask, share
