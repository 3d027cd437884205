"""Full-reference quality metrics for hyperspectral cubes: PSNR, SSIM, SAM, ERGAS.

Conventions (compare methods only under the same ones)
-------------------------------------------------------
- Cubes are (C, H, W) arrays; the reference is the clean cube scaled to [0, 1], so the data
  range is 1. Computation is in float64.
- PSNR and SSIM are computed per band and averaged over bands (not over the whole cube at once).
  A band identical to its reference has infinite PSNR; each band's PSNR is capped at
  :data:`PSNR_CAP` (100 dB) so that averages stay finite.
- SSIM follows scikit-image's ``structural_similarity`` defaults exactly: 7 × 7 uniform window,
  sample covariance (N/(N − 1)), K1 = 0.01, K2 = 0.03, mean over the interior where the window
  fits (a 3-pixel border is left out).
- SAM is the mean spectral angle in degrees over pixels; pixels where either spectrum has zero
  norm have no angle and are skipped.
- ERGAS = 100/scale · sqrt(mean_b (RMSE_b / μ_b)²), μ_b the mean of reference band b; ``scale``
  is the resolution ratio (1 for denoising, e.g. 4 for ×4 super-resolution). Bands whose
  reference mean is 0 have no relative error and are skipped.
- :func:`evaluate` clips the estimate to [0, 1] before scoring (the reference is not touched;
  the benchmarks' convention, DESIGN §7), or with ``clip=False`` scores both as they are, and
  can restrict PSNR, SAM and ERGAS to valid pixels (SSIM needs the whole image).
- Rasters on disk (``damp evaluate``, :func:`damp_engine.scene.evaluate_rasters`) follow the
  field's convention instead, :func:`raster_convention`: the peak is the reference's maximum
  over the scored samples (or a data range the user gives, e.g. 1 for reflectance, 65535 for
  16-bit counts), both rasters are divided by it and neither is clipped, so identical rasters
  score exactly the PSNR cap, SSIM 1, SAM 0 and ERGAS 0.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DampInputError

PSNR_CAP = 100.0     # dB, the PSNR of a band identical to its reference
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr(ref: np.ndarray, est: np.ndarray, data_range: float = 1.0) -> float:
    """Mean over bands of each band's PSNR, 10·log10(data_range² / MSE_b), in dB (capped at 100)."""
    r, e = _pair(ref, est)
    mse = ((r - e) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        per_band = 10 * np.log10(data_range ** 2 / mse)
    return float(np.minimum(per_band, PSNR_CAP).mean())


def ssim(ref: np.ndarray, est: np.ndarray, data_range: float = 1.0) -> float:
    """Mean over bands of each band's SSIM, identical to scikit-image's defaults.

    The 7 × 7 box means are one average pool over all bands and all five moment images at once
    (torch, float64); pooling without padding yields exactly the interior that scikit-image
    averages over.
    """
    r, e = _pair(ref, est)
    _require(min(r.shape[1:]) >= SSIM_WINDOW,
             f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, "
             f"got {r.shape[1]}×{r.shape[2]}.")
    x, y = torch.from_numpy(r), torch.from_numpy(e)
    n = SSIM_WINDOW ** 2
    cov_norm = n / (n - 1)
    with torch.no_grad():
        moments = torch.stack([x, y, x * x, y * y, x * y])
        ux, uy, uxx, uyy, uxy = F.avg_pool2d(moments, SSIM_WINDOW, stride=1)
        vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
        c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
        return float(s.mean(dim=(1, 2)).mean())


def sam(ref: np.ndarray, est: np.ndarray) -> float:
    """Mean spectral angle (degrees) between the pixels' spectra; zero-norm pixels skipped.

    NaN when no pixel has two non-zero spectra. The angle is computed as
    2·atan2(|u − v|, |u + v|) on unit vectors, which stays accurate near 0° (arccos does not).
    """
    r, e = _pair(ref, est)
    r, e = r.reshape(r.shape[0], -1), e.reshape(e.shape[0], -1)
    nr, ne = np.linalg.norm(r, axis=0), np.linalg.norm(e, axis=0)
    keep = (nr > 0) & (ne > 0)
    if not keep.any():
        return float("nan")
    u, v = r[:, keep] / nr[keep], e[:, keep] / ne[keep]
    angles = 2 * np.arctan2(np.linalg.norm(u - v, axis=0), np.linalg.norm(u + v, axis=0))
    return float(np.degrees(angles).mean())


def ergas(ref: np.ndarray, est: np.ndarray, scale: float = 1.0) -> float:
    """ERGAS = 100/scale · sqrt(mean_b (RMSE_b / μ_b)²); lower is better, 0 for identical cubes.

    Bands whose reference mean is 0 are skipped; NaN if every band is.
    """
    _require(scale > 0, f"The ERGAS scale (resolution ratio) must be > 0, not {scale!r}.")
    r, e = _pair(ref, est)
    rmse = np.sqrt(((r - e) ** 2).mean(axis=(1, 2)))
    mean = r.mean(axis=(1, 2))
    keep = mean != 0
    if not keep.any():
        return float("nan")
    return float(100 / scale * math.sqrt(((rmse[keep] / mean[keep]) ** 2).mean()))


def evaluate(ref: np.ndarray, est: np.ndarray, valid: np.ndarray | None = None,
             clip: bool = True) -> dict[str, float]:
    """Score an estimate against the reference: {"psnr", "ssim", "sam", "ergas"}, data range 1.

    ``est`` is clipped to [0, 1] first unless ``clip`` is False. ``valid`` is an optional (H, W)
    bool mask of the pixels to score: PSNR, SAM and ERGAS use only those pixels, SSIM the whole
    image (its windows need neighbours). Raises DampInputError when shapes do not match or no
    pixel is valid.
    """
    r, e = _pair(ref, est)
    if clip:
        e = np.clip(e, 0.0, 1.0)
    scores = {"ssim": ssim(r, e)}
    if valid is not None:
        r, e = _valid_pixels(r, e, valid)
    scores.update(psnr=psnr(r, e), sam=sam(r, e), ergas=ergas(r, e))
    return {key: scores[key] for key in ("psnr", "ssim", "sam", "ergas")}


def reference_peak(ref: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The peak of the field's PSNR convention: the reference's maximum over the scored samples.

    ref: (C, H, W); valid: optional (H, W) bool, the pixels scored. DampInputError when the
    maximum is not a positive number (then no peak can be read from the data: give a data range).
    """
    r = np.asarray(ref)
    values = r if valid is None else r[:, np.asarray(valid, bool)]
    peak = float(values.max()) if values.size else float("nan")
    _require(math.isfinite(peak) and peak > 0,
             f"The reference's maximum over the scored samples is {peak:g}, so it cannot be the peak of "
             "PSNR; give the data range instead (e.g. --data-range 1 for reflectance, 65535 for 16-bit counts).")
    return peak


def raster_convention(peak: float, given: bool = False) -> str:
    """One sentence stating how two rasters were scored, for the CLI's and QGIS's output."""
    source = "the data range given" if given else "the reference's maximum over the scored samples"
    return (f"Peak {peak:.6g} ({source}); reference and test both divided by it, neither clipped; PSNR "
            f"(capped at {PSNR_CAP:g} dB) and SSIM per band and averaged over bands, SAM in degrees, ERGAS "
            "(x100, lower is better); pixels invalid in either raster and bands without data in the "
            "reference are left out.")


def check_data_range(data_range: float) -> float:
    """A user's data range (the peak of PSNR) as a float; DampInputError unless finite and > 0."""
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        value = float("nan")
    _require(math.isfinite(value) and value > 0,
             f"The data range must be a positive number (e.g. 1 for reflectance, 65535 for 16-bit "
             f"counts), not {data_range!r}.")
    return value


def _valid_pixels(ref: np.ndarray, est: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The valid pixels of both cubes as (C, N, 1) cubes, so the per-band metrics apply as is."""
    mask = np.asarray(valid)
    _require(mask.shape == ref.shape[1:],
             f"The valid mask has shape {mask.shape} but the images are {ref.shape[1]}×{ref.shape[2]}; "
             "give one (rows, columns) mask.")
    mask = mask.astype(bool)
    _require(mask.any(), "The valid mask selects no pixel; nothing can be scored.")
    return ref[:, mask][:, :, None], est[:, mask][:, :, None]


def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both cubes as float64 (C, H, W) arrays, checked to have the same shape."""
    r, e = np.asarray(ref, dtype=np.float64), np.asarray(est, dtype=np.float64)
    _require(r.shape == e.shape,
             f"The reference {r.shape} and the estimate {e.shape} must have the same shape "
             "(bands, rows, columns); crop or resample one to match the other.")
    _require(r.ndim == 3, f"Expected cubes of shape (bands, rows, columns), got shape {r.shape}.")
    return r, e


def _require(condition: bool, message: str) -> None:
    """Raise DampInputError(message) unless ``condition`` holds."""
    if not condition:
        raise DampInputError(message)
