"""Restore cubes of any band count with a network built for a fixed one (DESIGN §4, "Any number of bands").

With C_m the network's band count and C the cube's:

* C == C_m: the network is applied directly.
* C < C_m: the spectrum is resampled up to C_m bands by linear interpolation along the band
  axis (first and last bands kept in place), restored, and brought back to C bands by the
  least-squares inverse of that interpolation, so that resampling up and back is exactly the
  identity.
* C > C_m: windows of C_m consecutive bands slide along the spectrum with a stride of about
  C_m / 2, the last one aligned with the last band. Each window is restored on its own (the
  degradation prompt is that of the window the network sees; all windows go through the
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
from .prompt import compute_prompt

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


def _check_cube(x: torch.Tensor) -> None:
    if x.ndim != 4:
        raise DampInputError(f"Expected a (batch, bands, rows, cols) cube, got shape {tuple(x.shape)}.")
    if x.shape[1] < MIN_BANDS:
        raise DampInputError(
            f"The raster has {x.shape[1]} band(s); DAMP restores hyperspectral cubes of at least {MIN_BANDS} bands.")


def network_views(x: torch.Tensor, model_bands: int) -> torch.Tensor:
    """What the network sees of a (B, C, H, W) cube: (V·B, C_m, H, W), view-major.

    V = 1 for C <= C_m (the cube itself, or resampled up to C_m bands), else one view per
    spectral window (`window_starts`).
    """
    _check_cube(x)
    bands = x.shape[1]
    if bands == model_bands:
        return x
    if bands < model_bands:
        return _apply_bands(band_interpolation(bands, model_bands), x)
    return torch.cat([x[:, s:s + model_bands] for s in window_starts(bands, model_bands)])


def view_prompts(x: torch.Tensor, model_bands: int) -> torch.Tensor:
    """(B, V, 6) degradation prompt of each of a cube's network views (see `network_views`)."""
    values = compute_prompt(network_views(x, model_bands)).values
    return values.unflatten(0, (-1, x.shape[0])).transpose(0, 1)


def restore_cube(net: DAMP, x: torch.Tensor, return_trace: bool = False,
                 prompts: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, RoutingTrace]:
    """Restore (B, C, H, W) with any C >= 3 -> (B, C, H, W) [, RoutingTrace].

    prompts: (B, V, 6) raw prompts of the network views (`view_prompts` of this cube, or of the
    scene it is a tile of), or None to use each view's own. The trace of a windowed cube
    averages the gates over its windows (per sample).
    """
    model_bands = net.preset.bands
    views = network_views(x, model_bands)
    bands = x.shape[1]
    prompt = None if prompts is None else prompts.transpose(0, 1).flatten(0, 1)
    result = net(views, prompt=prompt, return_trace=return_trace)
    if bands == model_bands:
        return result
    restored = result[0] if return_trace else result
    if bands < model_bands:
        back = _apply_bands(torch.linalg.pinv(band_interpolation(bands, model_bands)), restored)
        return (back, result[1]) if return_trace else back

    starts = window_starts(bands, model_bands)
    restored = restored.unflatten(0, (len(starts), x.shape[0]))
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
