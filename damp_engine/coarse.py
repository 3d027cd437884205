"""Coarse pixels: detect block replication and replace it by a fine image consistent with it (DESIGN §4a).

A raster resampled onto a finer grid by pixel replication (how `damp upscale` and the
super-resolution task present coarse data) repeats every value over f × f blocks. That is a fact
about the data, measured exactly: within a block, neighbouring samples are equal. The closed-form
estimate of the fine image starts from bicubic interpolation of one sample per block, each placed
at its block's centre, and is then back-projected (Irani and Peleg's iterative back-projection):
the fine image is reduced as a sensor would (an antialiased bicubic reduction: a smooth footprint
about a coarse pixel wide), and what the reduction misses of the coarse samples is interpolated
back onto it, ``BACK_PROJECTIONS`` times. Bicubic interpolation alone blurs, as its coarse samples
are themselves averages; the back-projected image agrees with them. On the quality suite's scenes
this gained 0.96 dB over bicubic at ×2 and 0.73 dB at ×4 (the gain had converged to within
0.03 dB). The network starts from it, as it starts from the wavelet estimate for noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

FACTORS = (8, 4, 2)      # block sizes tried, largest first (a 4-block is also a 2-block)
INSIDE_EQUAL = 0.98      # share of equal neighbours inside blocks for a detection
ACROSS_EQUAL = 0.5       # share of equal neighbours across block edges must stay below this
BANDS_CHECKED = 16
BACK_PROJECTIONS = 3     # iterations of back-projection after the bicubic interpolation


@dataclass(frozen=True)
class Blocks:
    """Replicated blocks of ``factor`` pixels whose first row / column lies at ``phase`` (y, x) mod factor
    in raster coordinates."""

    factor: int
    phase: tuple[int, int]

    def to_dict(self) -> dict:
        return {"factor": self.factor, "phase": list(self.phase)}


def _equal_shares(windows: list[tuple[np.ndarray, np.ndarray, int, int]], axis: int, factor: int) -> np.ndarray:
    """(factor,) share of equal neighbour pairs (k, k + 1) along `axis` by raster position k mod factor."""
    equal, count = np.zeros(factor), np.zeros(factor)
    for cube, valid, x0, y0 in windows:
        origin = y0 if axis == 1 else x0
        a, b = (cube[:, :-1], cube[:, 1:]) if axis == 1 else (cube[:, :, :-1], cube[:, :, 1:])
        va, vb = (valid[:, :-1], valid[:, 1:]) if axis == 1 else (valid[:, :, :-1], valid[:, :, 1:])
        same, both = (a == b) & va & vb, va & vb
        other = (0, 2) if axis == 1 else (0, 1)
        same_k, both_k = same.sum(axis=other), both.sum(axis=other)
        positions = (origin + np.arange(same_k.size)) % factor
        np.add.at(equal, positions, same_k)
        np.add.at(count, positions, both_k)
    return np.where(count > 0, equal / np.maximum(count, 1), np.nan)


def _phase(shares: np.ndarray) -> int | None:
    """The raster position mod f where blocks start, if `shares` show replication; else None."""
    factor = shares.size
    if np.isnan(shares).any():
        return None
    edge = int(np.argmin(shares))  # pair (k, k+1) straddling a block edge: k = last row of a block
    inside = np.delete(shares, edge)
    if inside.min() >= INSIDE_EQUAL and shares[edge] < ACROSS_EQUAL:
        return (edge + 1) % factor
    return None


def detect_blocks(windows: list[tuple[np.ndarray, np.ndarray, int, int]]) -> Blocks | None:
    """Replicated blocks in sample windows [(cube (C, h, w), valid (C, h, w), x0, y0)], or None.

    Replication repeats every band alike, so up to ``BANDS_CHECKED`` bands spread over the
    spectrum are enough to see it.
    """
    if windows and windows[0][0].shape[0] > BANDS_CHECKED:
        pick = np.linspace(0, windows[0][0].shape[0] - 1, BANDS_CHECKED).astype(int)
        windows = [(c[pick], v[pick], x0, y0) for c, v, x0, y0 in windows]
    for factor in FACTORS:
        usable = [w for w in windows if min(w[0].shape[1:]) >= 2 * factor]
        if not usable:
            continue
        py = _phase(_equal_shares(usable, 1, factor))
        px = _phase(_equal_shares(usable, 2, factor))
        if py is not None and px is not None:
            return Blocks(factor, (py, px))
    return None


def back_project(low: torch.Tensor, factor: int, iterations: int = BACK_PROJECTIONS) -> torch.Tensor:
    """Fine images (B, C, f·h, f·w) from coarse ones (B, C, h, w): bicubic interpolation, then
    `iterations` rounds of adding the interpolated difference between the coarse images and the
    antialiased bicubic reduction of the current estimate."""
    def enlarge(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=factor, mode="bicubic", align_corners=False)

    up = enlarge(low)
    for _ in range(iterations):
        reduced = F.interpolate(up, size=low.shape[-2:], mode="bicubic", antialias=True, align_corners=False)
        up = up + enlarge(low - reduced)
    return up


def back_projection_radius(factor: int) -> int:
    """Fine pixels of context either side that `back_project` reads: each round reaches two coarse
    pixels through the reduction and two through the interpolation."""
    return BACK_PROJECTIONS * 4 * factor


def interpolate_blocks(x: torch.Tensor, blocks: Blocks, origin: tuple[int, int]) -> torch.Tensor:
    """The back-projected fine image (`back_project`) of one sample per block of x (B, C, H, W), a
    window whose top-left pixel lies at raster position `origin` (y, x); each sample sits at its
    block's centre."""
    f = blocks.factor
    h, w = x.shape[-2:]
    top = (origin[0] - blocks.phase[0]) % f       # pixels of the window before its first full block
    left = (origin[1] - blocks.phase[1]) % f
    padded = F.pad(x, (left, 0, top, 0), mode="replicate") if (top or left) else x
    up = back_project(padded[..., ::f, ::f], f)
    need_h, need_w = top + h, left + w
    if up.shape[-2] < need_h or up.shape[-1] < need_w:
        up = F.pad(up, (0, max(0, need_w - up.shape[-1]), 0, max(0, need_h - up.shape[-2])), mode="replicate")
    return up[..., top:top + h, left:left + w]
