"""One analysis of a scene, computed once and used by every tile (DESIGN §4a.2, §5).

From a fixed grid of sample windows of the raster: the robust scaling factor, the bands without
data, the scene's degradation prompt (the median over the windows of each window's prompt) and
its spectral basis (`damp_engine.subspace`). `damp restore`, `damp prompt`, the dock and the
quality suite all read a raster through this, so they agree on what the scene is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import DampCancelled, DampInputError
from .coarse import Blocks, detect_blocks
from .deblur import BLUR_COMPONENTS, estimate_blur, refine_blur, wiener_balance
from .raster import RasterReader
from .scaling import Scaling, measure_scaling
from .subspace import SpectralBasis, fill_gaps, fit_basis, project, with_thresholds
from .validity import validity_mask

SAMPLE_WINDOW = 64        # side of the sample windows (the training crops' size)
SAMPLE_WINDOWS = 8        # at most this many per axis
MAX_BASIS_PIXELS = 16384  # spectra the basis is fitted on (a fixed stride over the windows)
MIN_VALID_SHARE = 0.25    # a window with fewer valid pixels is not sampled
NOISE_FREE_SIGMA = 2 / 255  # median band noise below which a scene counts as noise-free


def sample_windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The analysis windows of a width × height raster: ``SAMPLE_WINDOW`` pixels square, evenly
    spread, as many per axis as cover the raster (overlapping where it is not a multiple of the
    window) up to ``SAMPLE_WINDOWS``; a raster up to 8 windows wide is covered whole."""
    side = min(SAMPLE_WINDOW, width, height)

    def starts(size: int) -> np.ndarray:
        count = min(SAMPLE_WINDOWS, -(-size // side))
        return np.unique(np.linspace(0, size - side, num=count).round().astype(int))

    return [(int(x), int(y), side, side) for y in starts(height) for x in starts(width)]


def prompt_input(x: np.ndarray, valid: np.ndarray, void: np.ndarray) -> np.ndarray:
    """What the prompt is measured on: invalid samples 0 (as the degradations present gaps),
    void pixels at their band's median valid value (a swath edge is not a gap)."""
    out = np.where(valid, x, 0).astype(np.float32)
    if void.any():
        for band, ok, row in zip(x, valid, out):
            good = band[ok]
            row[void] = np.median(good) if good.size else 0.0
    return out


def scene_basis(windows: np.ndarray, valid: np.ndarray, positions: np.ndarray | None = None) -> SpectralBasis:
    """The basis (with its shrinkage thresholds) of scaled sample windows (N, C, h, w) and validity."""
    return fit_windows(windows, valid, positions)[0]


def scene_estimates(windows: np.ndarray, valid: np.ndarray,
                    positions: np.ndarray | None = None) -> tuple[SpectralBasis, float]:
    """(basis, blur σ) of scaled sample windows (N, C, h, w) and validity: the basis as
    `scene_basis`, σ the Gaussian blur read off the leading eigen-images and refined by the
    sparsity of the deconvolved first one (`damp_engine.deblur`),
    0 for a noisy scene (deconvolution would only amplify its noise) or a sharp one."""
    basis, components = fit_windows(windows, valid, positions)
    leading = components[:, :min(BLUR_COMPONENTS, basis.rank)].numpy()
    blur = 0.0
    if _noise_free(basis):
        blur = refine_blur(leading[:, 0], estimate_blur(leading), wiener_balance(basis.signal_std[0]))
    return basis, blur


def fit_windows(windows: np.ndarray, valid: np.ndarray,
                 positions: np.ndarray | None) -> tuple[SpectralBasis, torch.Tensor]:
    """The basis of the windows and their gap-filled eigen-images (N, K, h, w).

    The basis is fitted on up to ``MAX_BASIS_PIXELS`` spectra taken at a fixed stride over the
    windows' pixels with any valid band; the thresholds are measured on the windows' eigen-images.
    """
    n, c, h, w = windows.shape
    flat, flat_valid = windows.reshape(n, c, h * w), valid.reshape(n, c, h * w)
    index = np.flatnonzero(flat_valid.any(axis=1).ravel())
    if index.size > MAX_BASIS_PIXELS:
        index = index[np.linspace(0, index.size - 1, MAX_BASIS_PIXELS).astype(int)]
    if index.size < 2 * c and index.size < 64:
        raise DampInputError("Too few valid pixels to analyse the scene's spectra (fewer than 64).")
    window, pixel = np.divmod(index, h * w)
    try:
        basis = fit_basis(flat[window, :, pixel].T, flat_valid[window, :, pixel].T, positions)
    except ValueError as exc:
        raise DampInputError(f"The scene's spectra cannot be analysed: {exc}.") from exc
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    v = torch.from_numpy(valid)
    z = project(basis, x, v)
    known = (v & torch.from_numpy(basis.weights > 0)[:, None, None]).any(dim=1, keepdim=True)
    filled = fill_gaps(z, known)
    return with_thresholds(basis, filled), filled


def _noise_free(basis: SpectralBasis) -> bool:
    sigma = basis.noise_sigma
    return bool(np.isfinite(sigma).any() and np.nanmedian(sigma) < NOISE_FREE_SIGMA)


@dataclass(frozen=True)
class SceneAnalysis:
    """What a raster is, measured once: scaling, lost bands, prompt and spectral basis.

    scaling:   divide stored values (after band scale/offset) by ``scaling.factor``.
    lost:      (C,) bool, bands that hold no information: nodata everywhere, zero everywhere
               (a lost band) or marked bad. Their values come from the basis.
    nodata_bands: (C,) bool, bands nodata everywhere (e.g. absorption bands a provider blanked):
               they stay nodata in the output.
    prompt:    (6,) float32 raw scene prompt (``METRIC_NAMES`` order).
    basis:     the scene's `SpectralBasis` over all C bands.
    windows:   the sample windows (x0, y0, w, h) it was measured on.
    missing_share: share of the sampled values that are missing (gaps, dead lines, lost bands)
               among those the reader returned as valid.
    blocks:    replicated blocks of coarse pixels (`damp_engine.coarse`), or None.
    blur:      σ (pixels) of the Gaussian blur the restoration removes (`damp_engine.deblur`), 0 if none.
    """

    scaling: Scaling
    lost: np.ndarray
    nodata_bands: np.ndarray
    prompt: np.ndarray
    basis: SpectralBasis
    windows: list[tuple[int, int, int, int]]
    missing_share: float = 0.0
    blocks: Blocks | None = None
    blur: float = 0.0

    @property
    def noise_free(self) -> bool:
        """True when the median band noise (HySime-style estimate) is below ``NOISE_FREE_SIGMA``."""
        return _noise_free(self.basis)

    @property
    def complement_share(self) -> float:
        """Share of the input's out-of-subspace part the restoration keeps: all of it in a noise-free
        scene (real detail), none in a noisy one (almost all noise); see `damp_engine.restoration`."""
        return 1.0 if self.noise_free else 0.0

    @property
    def keep_valid(self) -> bool:
        """Return valid samples unchanged and only fill the missing ones: the scene is noise-free,
        sharp and its pixels are not replicated blocks (DESIGN §4a.1: a restoration must first do
        no harm)."""
        return self.noise_free and self.blocks is None and not self.blur

    def prompt_dict(self) -> dict[str, float]:
        from .prompt import METRIC_NAMES

        return {name: float(v) for name, v in zip(METRIC_NAMES, self.prompt)}

    def to_dict(self) -> dict:
        return {"scene_prompt": self.prompt_dict(), "scale_factor": self.scaling.factor,
                "sample_windows": len(self.windows), "basis": self.basis.to_dict(),
                "missing_share": round(self.missing_share, 6), "noise_free": self.noise_free,
                "keep_valid": self.keep_valid, "coarse_blocks": self.blocks and self.blocks.to_dict(),
                "blur_sigma": round(self.blur, 3)}


def analyse_scene(reader: RasterReader, bad: np.ndarray | None = None, mask: RasterReader | None = None,
                  region: tuple[int, int, int, int] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> SceneAnalysis:
    """Analyse the raster behind `reader`.

    bad:     (C,) bool, bands to regenerate (their values are ignored).
    mask:    raster of pixels to fill (non-zero), on the raster's grid.
    region:  (x0, y0, w, h) to analyse only part of the raster (the dock's visible extent).
    """
    from .prompt import compute_prompt

    info = reader.info
    bad = np.zeros(info.bands, bool) if bad is None else bad
    scaling = measure_scaling(reader, exclude=bad)
    rx, ry, rw, rh = region or (0, 0, info.width, info.height)
    grid = [(rx + x, ry + y, w, h) for x, y, w, h in sample_windows(rw, rh)]
    reads, nonzero = [], np.zeros(info.bands, bool)
    for x0, y0, w, h in grid:  # each window is read once
        if cancelled is not None and cancelled():
            raise DampCancelled("The scene analysis was cancelled.")
        data, valid = reader.read(x0, y0, w, h)
        fill = None if mask is None else mask.read(x0, y0, w, h)[0][0] != 0
        nonzero |= ((data != 0) & valid).reshape(info.bands, -1).any(axis=1)
        reads.append((np.divide(data, np.float32(scaling.factor), out=data), valid, fill, (x0, y0, w, h)))
    nodata_bands = ~scaling.good_bands
    lost = nodata_bands | bad | ~nonzero
    if (~lost).sum() < 3:
        raise DampInputError(f"Only {int((~lost).sum())} band(s) of {info.path} hold data that is not marked "
                             "bad; DAMP needs at least 3 bands with data.")
    windows, prompts, raw = [], [], []
    # every window has the same shape: filled in place, a 224-band scene's windows are not copied again
    cubes = np.empty((len(reads), *reads[0][0].shape), np.float32)
    valids = np.empty(cubes.shape, bool)
    missing, measured = 0, 0
    for x, valid, fill, (x0, y0, w, h) in reads:
        ok, void = validity_mask(x, valid, lost, fill)
        if (~void).mean() < MIN_VALID_SHARE:
            continue
        kept = len(windows)
        windows.append((x0, y0, w, h))
        usable = valid & ~nodata_bands[:, None, None]
        missing += int((usable & ~ok).sum())
        measured += int(usable.sum())
        cubes[kept] = x
        np.copyto(cubes[kept], np.float32(0.0), where=~ok)
        raw.append((x, ok, x0, y0))
        valids[kept] = ok
        if min(w, h) >= 8:
            prompts.append(compute_prompt(prompt_input(x, ok, void)).values[0].double())
    if not windows:
        raise DampInputError(f"{info.path}: no part of the raster is at least a quarter valid pixels; "
                             "there is nothing to analyse.")
    if not prompts:
        raise DampInputError(f"{info.path} is too small for the degradation prompt (needs 8 × 8 pixels).")
    prompt = np.median(torch.stack(prompts).numpy(), axis=0).astype(np.float32)
    blocks = detect_blocks(raw)
    positions = np.asarray(info.wavelengths, np.float64) if info.wavelengths else None
    basis, blur = scene_estimates(cubes[:len(windows)], valids[:len(windows)], positions)
    return SceneAnalysis(scaling, lost, nodata_bands, prompt, basis, windows, missing / max(1, measured),
                         blocks, 0.0 if blocks is not None else blur)
