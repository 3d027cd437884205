"""Restoration v2 (DESIGN §4a): keep what is measured, restore in the scene's spectral subspace.

For a scaled cube x (B, C, H, W) with its validity mask and the scene's `SpectralBasis`:

1. z  = the eigen-images of x, by least squares over each pixel's valid bands; pixels with no
       valid band get a spatial interpolation of z and are flagged in the gap mask; in a
       noise-free scene with a Gaussian blur of width σ > 0 (`damp_engine.deblur`), z is
       deconvolved;
2. z₀ = the closed-form estimate (wavelet shrinkage of each eigen-image);
3. ẑ  = z₀ + net(z, z₀, gap, prompt), the DAMP network routed by the scene's prompt;
4. x̂  = m + E·ẑ + g·(x − m − E·z) on valid samples, g the share of the input's out-of-subspace
       part that is kept; m + E·ẑ on invalid ones (gaps, dead lines); a band lost in the whole
       scene is then interpolated along wavelength from each pixel's restored spectrum.

The share g is set by the scene's measured noise (`SceneAnalysis.complement_share`): 0 for a
noisy scene (the out-of-subspace part is almost all noise: the clean projection error of real
scenes is 47–61 dB), 1 for a noise-free one (it holds real detail). DESIGN §4a.5 lets the prompt
gate it; a learned gate needed hundreds of CPU steps to approach 0 and still cost 0.4 dB at
σ = 30 after 400 steps (SAMSON; a one-off comparison during this design, not a script in the
repository), while the noise estimate separates clean from noisy
scenes by an order of magnitude.

One network pass of 2K + 1 channels per pixel whatever the band count. This one function
serves training (with gradients), `damp restore`, the dock and the quality suite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .deblur import deconvolve, wiener_balance
from .model import DAMP, RoutingTrace
from .subspace import SpectralBasis, fill_gaps, fill_lost_bands, project, reconstruct, shrink


@dataclass
class Restored:
    """The result of `restore_cube`: the cube (B, C, H, W), the routing (None without a network)
    and the network's load-balancing loss."""

    cube: torch.Tensor
    trace: RoutingTrace | None
    aux: torch.Tensor


def usable_samples(basis: SpectralBasis, valid: torch.Tensor) -> torch.Tensor | None:
    """(B, C, H, W) bool: the valid samples of bands with data in the scene; None when that is
    every sample (no gap, no lost band: the common case, which then skips the per-pixel work)."""
    band_ok = basis.weights > 0
    if band_ok.all() and bool(valid.all()):
        return None
    return valid & torch.as_tensor(band_ok, device=valid.device)[:, None, None]


def network_input(basis: SpectralBasis, x: torch.Tensor, valid: torch.Tensor,
                  blur: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input (B, 2K + 1, H, W) for DAMP, z (B, K, H, W), z deconvolved of a Gaussian blur of width
    `blur` (z itself when 0)) of a scaled cube and its validity."""
    usable = usable_samples(basis, valid)
    z = project(basis, x, None if usable is None else valid)  # None: every sample counts, no second check
    if usable is None:
        known = torch.ones((x.shape[0], 1, *x.shape[2:]), dtype=torch.bool, device=x.device)
    else:
        known = usable.any(dim=1, keepdim=True)
        z = fill_gaps(z, known)
    sharp = deconvolve(z, blur, [wiener_balance(s) for s in basis.signal_std]) if blur else z
    z0 = shrink(basis, sharp)
    scale = torch.as_tensor(basis.signal_std, dtype=x.dtype, device=x.device)[:, None, None]
    return torch.cat((sharp / scale, z0 / scale, (~known).to(x.dtype)), dim=1), z, sharp


def restore_cube(net: DAMP | None, basis: SpectralBasis, x: torch.Tensor, valid: torch.Tensor,
                 prompt: torch.Tensor, complement_share: float = 0.0, keep_valid: bool = False,
                 blur: float = 0.0, discard: np.ndarray | None = None) -> Restored:
    """Restore scaled cubes x (B, C, H, W) with validity (B, C, H, W) bool and raw prompts (B, 6).

    net None gives the closed-form restoration (ẑ = z₀). complement_share is g (see the module
    docstring); keep_valid returns every valid sample unchanged (a noise-free scene: only its
    missing samples are filled); blur is the σ of the Gaussian blur to remove (0: none); discard
    (C,) bool flags bands the caller blanks (nodata in the whole raster): not interpolated.
    """
    inputs, z, _ = network_input(basis, x, valid, blur)
    k = basis.basis.shape[1]
    scale = torch.as_tensor(basis.signal_std, dtype=x.dtype, device=x.device)[:, None, None]
    if net is None:
        components, trace, aux = inputs[:, k:2 * k], None, x.new_zeros(())
    else:
        out = net(inputs.to(net.dp_shift.dtype), prompt)
        components, trace, aux = out.components.to(x.dtype), out.trace, out.aux
    components = components * scale
    components[:, basis.rank:] = 0
    restored = reconstruct(basis, components)
    usable = usable_samples(basis, valid) if keep_valid or complement_share else None
    if keep_valid:
        restored = x.clone() if usable is None else torch.where(usable, x, restored)
    elif complement_share:
        # m + E·ẑ + g·(x − m − E·z) = restored + g·(x − m − E·z) on valid samples
        kept = restored + complement_share * (x - reconstruct(basis, z))
        restored = kept if usable is None else torch.where(usable, kept, restored)
    return Restored(fill_lost_bands(basis, restored, discard), trace, aux)
