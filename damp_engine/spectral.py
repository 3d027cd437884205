"""Restore cubes of any band count with a network built for a fixed one (DESIGN §4, "Any number of bands").

With C_m the network's band count and C the cube's:

* C == C_m: the network is applied directly.
* C < C_m: the spectrum is resampled up to C_m bands by linear interpolation along the band
  axis (first and last bands kept in place), restored, and brought back to C bands by the
  least-squares inverse of that interpolation, so that resampling up and back is exactly the
  identity.
* C > C_m: windows of C_m consecutive bands slide along the spectrum with a stride of about
  C_m / 2, the last one aligned with the last band. Each window is restored on its own (the
  network computes the degradation prompt of the window it sees; all windows go through the
  network as one batch). Overlapping outputs are blended with weights that taper towards the
  window edges, ``floor + (1 - floor)·sin²(π(j + ½)/C_m)`` for band j of the window, and
  normalised by the summed weights; the floor keeps every band's weight positive, so the
  first and last bands of the spectrum are covered too.
"""
from __future__ import annotations

import math

import torch

from .errors import DampInputError
from .model import DAMP, RoutingTrace

MIN_BANDS = 3
EDGE_WEIGHT = 0.05  # blending weight floor at the edge of a spectral window


def band_interpolation(bands: int, target: int) -> torch.Tensor:
    """(target, bands) float64 matrix resampling a spectrum linearly, end bands aligned."""
    positions = torch.linspace(0, bands - 1, target, dtype=torch.float64)
    lower = positions.floor().clamp(max=bands - 2).long()
    frac = positions - lower
    matrix = torch.zeros(target, bands, dtype=torch.float64)
    rows = torch.arange(target)
    matrix[rows, lower] = 1 - frac
    matrix[rows, lower + 1] += frac
    return matrix


def window_starts(bands: int, window: int) -> list[int]:
    """First band of each spectral window: stride ``window // 2``, the last window ending at the last band."""
    stride = max(1, window // 2)
    return [*range(0, bands - window, stride), bands - window]


def window_weights(window: int) -> torch.Tensor:
    """(window,) blending weights, largest in the middle, ``EDGE_WEIGHT``-ish at the edges, all > 0."""
    j = torch.arange(window, dtype=torch.float64)
    return EDGE_WEIGHT + (1 - EDGE_WEIGHT) * torch.sin(math.pi * (j + 0.5) / window) ** 2


def _apply_bands(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(M, C) matrix applied along the band axis of (B, C, H, W) -> (B, M, H, W)."""
    return torch.einsum("mc,bchw->bmhw", matrix.to(device=x.device, dtype=x.dtype), x)


def restore_cube(net: DAMP, x: torch.Tensor,
                 return_trace: bool = False) -> torch.Tensor | tuple[torch.Tensor, RoutingTrace]:
    """Restore (B, C, H, W) with any C >= 3 -> (B, C, H, W) [, RoutingTrace].

    The trace of a windowed cube averages the gates over its windows (per sample).
    """
    if x.ndim != 4:
        raise DampInputError(f"Expected a (batch, bands, rows, cols) cube, got shape {tuple(x.shape)}.")
    bands, model_bands = x.shape[1], net.preset.bands
    if bands < MIN_BANDS:
        raise DampInputError(
            f"The raster has {bands} band(s); DAMP restores hyperspectral cubes of at least {MIN_BANDS} bands.")
    if bands == model_bands:
        return net(x, return_trace=return_trace)
    if bands < model_bands:
        up = band_interpolation(bands, model_bands)
        result = net(_apply_bands(up, x), return_trace=return_trace)
        restored = result[0] if return_trace else result
        back = _apply_bands(torch.linalg.pinv(up), restored)
        return (back, result[1]) if return_trace else back

    starts = window_starts(bands, model_bands)
    windows = torch.cat([x[:, s:s + model_bands] for s in starts])  # (n·B, C_m, H, W), window-major
    result = net(windows, return_trace=return_trace)
    restored = (result[0] if return_trace else result).unflatten(0, (len(starts), x.shape[0]))
    weights = window_weights(model_bands).to(device=x.device, dtype=x.dtype)
    blended = x.new_zeros(x.shape)
    total = x.new_zeros(bands)
    for i, s in enumerate(starts):
        blended[:, s:s + model_bands] += weights[:, None, None] * restored[i]
        total[s:s + model_bands] += weights
    blended = blended / total[:, None, None]
    if not return_trace:
        return blended
    trace = result[1]
    gates = trace.gates.unflatten(0, (len(starts), x.shape[0])).mean(dim=0)
    return blended, RoutingTrace(trace.block_names, gates, trace.spatial_share)
