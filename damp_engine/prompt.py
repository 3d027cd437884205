"""The degradation prompt (DP): six closed-form metrics that describe how an image is degraded.

DAMP routes its experts on these numbers instead of on a learned, opaque embedding, so each one
has a plain physical reading (shown to users in the README, the CLI and the QGIS dock). How
they move, as measured on the CAVE and Samson test scenes:

| name | title                           | goes up with                            | goes down with                   |
|------|---------------------------------|-----------------------------------------|----------------------------------|
| HFER | high-frequency energy ratio     | noise, stripes, impulse noise, gaps     | blur                             |
| STU  | spatial texture uniformity      | noise, stripes, impulse noise, gaps     | —                                |
| SCM  | spectral curvature mean         | noise, lost bands, impulse noise        | gaps (zeroed pixels are flat)    |
| SCS  | spectral curvature std          | lost bands, impulse noise; mildly noise | —                                |
| GSTD | gradient std                    | noise, stripes, impulse noise, gaps     | blur                             |
| SCC  | spatial correlation coefficient | blur                                    | noise, stripes, gaps, lost bands |

Conventions shared by every metric:

- input x is a batch (B, C, H, W) with values scaled to about [0, 1] and no NaN or nodata (the
  caller fills nodata first); each metric returns one value per image, shape (B,), float32;
- every pixel is used (no random sampling), so the prompt is deterministic;
- each image is processed on its own, so its prompt does not depend on the rest of the batch;
- the work runs under ``torch.no_grad()`` on the input's device, in float32, streaming over
  chunks of bands (about 4 M values at a time) so that memory stays bounded; the final
  reductions to one number per image are done in float64;
- every division is guarded by a tiny epsilon, so a constant image gives finite values (0 for
  HFER, SCM, SCS, GSTD and SCC, 1 for STU);
- the metrics come in two families that share their work: the spatial ones (HFER, STU, GSTD,
  SCC) and the spectral ones (SCM, SCS). A one-metric function computes its whole family, so
  ``compute_prompt`` is the cheap way to get several.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DampInputError
from .names import METRIC_NAMES

_EPS = 1e-12  # guards divisions: an energy of 1e-12 (std 1e-6) is far below any real signal
_CHUNK_VALUES = 1 << 22  # values per chunk of bands: about 16 MiB in float32
_HIGH_FREQUENCY = 1.0 / 6.0  # cycles per pixel; min(H, W)/6 FFT bins for a square image
_TEXTURE_BLOCK = 8  # side, in pixels, of the blocks in which STU measures local texture
_MIN_BANDS = 3
_MIN_SIZE = 8


@dataclass(frozen=True)
class Prompt:
    """The six DP metrics of a batch of images.

    ``values`` is (B, 6) float32 on the input's device, columns in ``METRIC_NAMES`` order.
    """

    values: torch.Tensor

    def as_dict(self, index: int = 0) -> dict[str, float]:
        """The metrics of image ``index`` of the batch, as ``{name: value}``."""
        return dict(zip(METRIC_NAMES, self.values[index].tolist()))


@torch.no_grad()
def hfer(x: torch.Tensor) -> torch.Tensor:
    """High-frequency energy ratio: the share of a band's spatial energy at fine scales.

    For each band x_c: remove its mean, multiply by a 2-D (periodic) Hann window w, take the
    2-D FFT X_c and sum the power |X_c(f)|^2 over the frequencies f = (f_y, f_x), in cycles per
    pixel, farther from the centre of the (centred) spectrum than 1/6 cycle per pixel:

        HFER = (1/C) * sum_c  sum_{|f| > 1/6} |X_c(f)|^2  /  sum_f |X_c(f)|^2

    For a square image the threshold is min(H, W)/6 FFT bins from the centre; measuring it in
    cycles per pixel keeps the same physical scale along both axes of a non-square image.
    Removing the mean stops the DC term from dominating; the window stops the image border from
    acting as a false edge. The denominator comes from Parseval's theorem (the energy of the
    windowed band), so only the small low-frequency part of the spectrum needs summing.

    Physical meaning: structure finer than 6 pixels per cycle. Noise, stripes, impulse noise and
    gaps raise it; blur and smoothing lower it. A constant (e.g. lost) band counts as 0.

    (B, C, H, W) -> (B,)
    """
    return _per_image(x, lambda image: _spatial_metrics(image)["hfer"])


@torch.no_grad()
def stu(x: torch.Tensor) -> torch.Tensor:
    """Spatial texture uniformity: how evenly local texture is spread over the image.

    Local texture is the Sobel gradient energy g^2 = g_x^2 + g_y^2 (see ``gstd``), averaged
    over bands and then over non-overlapping 8x8-pixel blocks b (smaller ones in images under
    18 pixels across, so that there are at least 2x2 blocks), giving a texture level t_b per
    block. With CV = std_b(t_b) / mean_b(t_b) the coefficient of variation of those levels:

        STU = 1 / (1 + CV)            in (0, 1]

    Physical meaning: 1 when texture is the same everywhere (noise over the whole scene, a
    uniform pattern, or a constant image); towards 0 when it is concentrated in a few places
    (sparse sharp edges on flat ground). Averaging the energy over bands first makes STU a
    purely spatial measure: lost (zeroed) bands just drop out of the average and barely move it.

    (B, C, H, W) -> (B,)
    """
    return _per_image(x, lambda image: _spatial_metrics(image)["stu"])


@torch.no_grad()
def scm(x: torch.Tensor) -> torch.Tensor:
    """Spectral curvature mean: the average roughness of the pixel spectra.

    For each pixel p with spectrum s_1..s_C, the spectral curvature is the mean absolute second
    difference along the spectrum, and SCM is its mean over the H*W pixels:

        k(p) = (1/(C-2)) * sum_{i=2..C-1} |s_{i-1} - 2 s_i + s_{i+1}|
        SCM  = mean_p k(p)

    Physical meaning: real spectra are smooth from band to band; noise, lost (zeroed) bands,
    spikes and spectral distortion make them jagged and raise SCM.

    (B, C, H, W) -> (B,)
    """
    return _per_image(x, lambda image: _spectral_metrics(image)["scm"])


@torch.no_grad()
def scs(x: torch.Tensor) -> torch.Tensor:
    """Spectral curvature std: how much spectral roughness varies from pixel to pixel.

    The (population) standard deviation over the H*W pixels of the per-pixel spectral curvature
    k(p) defined in ``scm``:

        SCS = std_p k(p)

    Physical meaning: degradations that hit every pixel alike (i.i.d. noise) raise SCS much less
    than SCM; those whose damage differs from pixel to pixel raise it strongly: a lost band
    hurts bright pixels more than dark ones, impulse noise hits some pixels only.

    (B, C, H, W) -> (B,)
    """
    return _per_image(x, lambda image: _spectral_metrics(image)["scs"])


@torch.no_grad()
def gstd(x: torch.Tensor) -> torch.Tensor:
    """Gradient std: the spread of edge strength in each band.

    With the Sobel derivatives of each band, scaled by 1/8 so that they are in value per pixel
    (a ramp of slope a gives a), taken over the interior (H-2) x (W-2) pixels where the 3x3
    kernel fits:

        g_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] / 8 * x_c,   g_y its transpose
        GSTD = (1/C) * sum_c  std_p sqrt(g_x^2 + g_y^2)

    Physical meaning: sharp edges next to flat areas give a wide spread of gradient magnitudes;
    blur lowers it; noise, impulse noise and gaps raise it. A constant band counts as 0.

    (B, C, H, W) -> (B,)
    """
    return _per_image(x, lambda image: _spatial_metrics(image)["gstd"])


@torch.no_grad()
def scc(x: torch.Tensor) -> torch.Tensor:
    """Spatial correlation coefficient: how alike neighbouring pixels are.

    For each band, the Pearson correlation r of the band with itself shifted by one pixel,
    averaged over the horizontal and the vertical shift, then over bands:

        SCC = (1/C) * sum_c ( r(x_c[:, :-1], x_c[:, 1:]) + r(x_c[:-1, :], x_c[1:, :]) ) / 2

    Physical meaning: close to 1 for smooth or blurred bands, lower for noisy, striped, gappy or
    finely textured ones. A constant band has no spatial structure and counts as 0, so lost
    (zeroed) bands lower SCC too.

    (B, C, H, W) -> (B,)
    """
    return _per_image(x, lambda image: _spatial_metrics(image)["scc"])


@torch.no_grad()
def compute_prompt(x: torch.Tensor | np.ndarray) -> Prompt:
    """The six DP metrics of one cube (C, H, W) or a batch (B, C, H, W), numpy or torch.

    Values must be scaled to about [0, 1] with nodata already filled; the result is on the
    input's device. Raises ``DampInputError`` for fewer than 3 bands, fewer than 8 rows or
    columns, or values that are not finite. All six cost two passes over the bands: one for
    the spatial metrics (HFER, STU, GSTD, SCC), one for the spectral ones (SCM, SCS).
    """
    return Prompt(_per_image(_as_batch(x), _image_prompt))


def _as_batch(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A (B, C, H, W) tensor sharing memory with ``x`` where possible; (C, H, W) gains B = 1."""
    tensor = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if tensor.ndim == 3:
        return tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise DampInputError(
            f"Expected a cube (bands, rows, columns) or a batch (batch, bands, rows, columns), "
            f"got shape {tuple(tensor.shape)}; pass a 3-D or 4-D array."
        )
    return tensor


def _check_shape(x: torch.Tensor) -> None:
    """Raise ``DampInputError`` unless x is (B, C, H, W) with C >= 3 and H, W >= 8."""
    if x.ndim != 4:
        raise DampInputError(
            f"Expected a batch (batch, bands, rows, columns), got shape {tuple(x.shape)}; "
            "use compute_prompt for a single cube."
        )
    if x.shape[1] < _MIN_BANDS:
        raise DampInputError(
            f"The degradation prompt needs at least {_MIN_BANDS} bands: spectral curvature uses "
            f"second differences; this image has {x.shape[1]}. Use a raster with {_MIN_BANDS} or more bands."
        )
    if min(x.shape[-2:]) < _MIN_SIZE:
        raise DampInputError(
            f"The degradation prompt needs at least {_MIN_SIZE}x{_MIN_SIZE} pixels; this image "
            f"is {x.shape[-2]}x{x.shape[-1]}. Use a larger window or tile."
        )


def _per_image(x: torch.Tensor, image_metric: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``image_metric`` ((C, H, W) -> float64 tensor) to each image: (B, ...) float32.

    A non-finite input value propagates to the metric (through a band mean, sum or difference),
    so checking the B results catches NaN and infinities without another pass over the data.
    """
    _check_shape(x)
    values = torch.stack([image_metric(image) for image in x])
    if not bool(torch.isfinite(values).all()):
        raise DampInputError(
            "The image contains NaN or infinite values (or values far outside [0, 1]); fill "
            "nodata and scale the values to about [0, 1] before computing the prompt."
        )
    return values.to(torch.float32)


def _chunks(image: torch.Tensor, overlap: int = 0) -> Iterator[torch.Tensor]:
    """Consecutive float32 slices of the bands of a (C, H, W) image, about 4 M values each.

    With ``overlap`` = k, each slice also carries the next k bands, so that a k-band spectral
    stencil sees every position exactly once across the slices.
    """
    bands = image.shape[0]
    step = max(1, _CHUNK_VALUES // (image.shape[-2] * image.shape[-1]))
    for start in range(0, bands - overlap, step):
        yield image[start:start + step + overlap].to(torch.float32)


def _image_prompt(image: torch.Tensor) -> torch.Tensor:
    """The six metrics of a (C, H, W) image, (6,) float64 in ``METRIC_NAMES`` order."""
    metrics = {**_spatial_metrics(image), **_spectral_metrics(image)}
    return torch.stack([metrics[name] for name in METRIC_NAMES])


def _spatial_metrics(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """HFER, STU, GSTD and SCC of a (C, H, W) image, float64 scalars.

    One pass over the bands: HFER and SCC share the mean-removed bands, STU and GSTD share
    the Sobel gradient energy.
    """
    per_band: dict[str, list[torch.Tensor]] = {"hfer": [], "gstd": [], "scc": []}
    energy_map = torch.zeros(image.shape[-2] - 2, image.shape[-1] - 2, device=image.device)
    for chunk in _chunks(image):
        centred = _centred(chunk)
        per_band["hfer"].append(_hfer_of_bands(centred))
        per_band["scc"].append(_scc_of_bands(centred))
        energy = _sobel_energy(chunk)
        energy_map += energy.sum(dim=0)
        per_band["gstd"].append(_gstd_of_bands(energy))
    metrics = {name: torch.cat(values).mean() for name, values in per_band.items()}
    metrics["stu"] = _stu_of_energy_map(energy_map / image.shape[0])
    return metrics


def _spectral_metrics(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """SCM and SCS of a (C, H, W) image, float64 scalars (both from one curvature map)."""
    curvature = _curvature_map(image)
    spread, level = torch.std_mean(curvature, correction=0)
    return {"scm": level, "scs": spread}


def _centred(chunk: torch.Tensor) -> torch.Tensor:
    """Each band of a (k, H, W) chunk minus its own mean (a new tensor)."""
    return chunk - chunk.mean(dim=(-2, -1), keepdim=True)


def _hfer_of_bands(centred: torch.Tensor) -> torch.Tensor:
    """HFER of each band of a (k, H, W) chunk of mean-removed bands: (k,) float64."""
    height, width = centred.shape[-2:]
    windowed = centred * _hann_2d(height, width, centred.device)
    total = torch.linalg.vector_norm(windowed, dim=(-2, -1)).double().square()
    rows, weights = _low_frequency_region(height, width, centred.device)
    spectrum = torch.fft.rfft2(windowed, norm="ortho")[:, rows, : weights.shape[-1]]
    low = (spectrum.abs().square() * weights).sum(dim=(-2, -1)).double()
    return (total - low).clamp(min=0) / (total + _EPS * height * width)


@lru_cache(maxsize=8)
def _hann_2d(height: int, width: int, device: torch.device) -> torch.Tensor:
    """The 2-D periodic Hann window (H, W), float32."""
    rows = torch.hann_window(height, periodic=True, device=device)
    cols = torch.hann_window(width, periodic=True, device=device)
    return torch.outer(rows, cols)


@lru_cache(maxsize=8)
def _low_frequency_region(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the low frequencies |f| <= 1/6 cycle per pixel lie in an ``rfft2`` spectrum.

    Returns the spectrum rows that hold any of them and, for those rows and the first columns,
    weights that count each low frequency of the full spectrum once: 1 in column 0, 2 in the
    other columns (each stands for itself and its conjugate mirror), 0 outside the disc.
    """
    f_y = torch.fft.fftfreq(height, device=device)
    f_x = torch.fft.rfftfreq(width, device=device)
    inside = f_y[:, None].square() + f_x[None, :].square() <= _HIGH_FREQUENCY**2
    rows = inside.any(dim=1).nonzero().flatten()
    columns = int(inside.any(dim=0).sum())
    mirror = torch.full((columns,), 2.0, device=device)
    mirror[0] = 1.0
    return rows, inside[rows, :columns] * mirror


def _sobel_energy(chunk: torch.Tensor) -> torch.Tensor:
    """Squared Sobel gradient magnitude g_x^2 + g_y^2 of each band, (k, H-2, W-2) float32.

    The derivatives are scaled by 1/8 (value per pixel); both are built from separable
    [1, 2, 1] smoothing and [-1, 0, 1] differencing on the interior pixels only.
    """
    smooth = chunk[:, :-2] + chunk[:, 2:]
    smooth.add_(chunk[:, 1:-1], alpha=2.0)
    g_x = smooth[..., 2:] - smooth[..., :-2]
    diff = torch.sub(chunk[:, 2:], chunk[:, :-2], out=smooth)
    g_y = diff[..., :-2] + diff[..., 2:]
    g_y.add_(diff[..., 1:-1], alpha=2.0)
    return g_x.square_().addcmul_(g_y, g_y).mul_(1.0 / 64.0)


def _gstd_of_bands(energy: torch.Tensor) -> torch.Tensor:
    """GSTD of each band from its Sobel gradient energy (k, H-2, W-2): (k,) float64.

    std = sqrt(mean(g^2) - mean(g)^2) with g = sqrt(energy): the mean of g^2 is the mean
    energy, so one pass (the square root) suffices. g's spread is comparable to its mean for
    real gradient fields, so the subtraction loses no useful precision.
    """
    pixels = energy.shape[-2] * energy.shape[-1]
    mean_square = energy.sum(dim=(-2, -1)).double() / pixels
    mean = energy.sqrt().sum(dim=(-2, -1)).double() / pixels
    return (mean_square - mean.square()).clamp(min=0).sqrt()


def _stu_of_energy_map(energy: torch.Tensor) -> torch.Tensor:
    """STU from the band-averaged Sobel gradient energy (H-2, W-2): a float64 scalar."""
    block = min(_TEXTURE_BLOCK, *(side // 2 for side in energy.shape))
    local = F.avg_pool2d(energy[None, None], block).flatten().double()
    spread, level = torch.std_mean(local, correction=0)
    return 1.0 / (1.0 + spread / (level + _EPS))


def _scc_of_bands(centred: torch.Tensor) -> torch.Tensor:
    """SCC of each band of a (k, H, W) chunk of mean-removed bands: (k,) float64."""
    horizontal = _pearson(centred[..., :, :-1], centred[..., :, 1:])
    vertical = _pearson(centred[..., :-1, :], centred[..., 1:, :])
    return (horizontal + vertical) / 2


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of a and b over their last two axes, (k,) float64.

    Inputs should be centred (near-zero mean) so that the one-pass moments lose no precision.
    """
    dims = (-2, -1)
    pixels = a.shape[-2] * a.shape[-1]
    mean_a = a.sum(dim=dims).double() / pixels
    mean_b = b.sum(dim=dims).double() / pixels
    var_a = torch.linalg.vector_norm(a, dim=dims).double().square() / pixels - mean_a.square()
    var_b = torch.linalg.vector_norm(b, dim=dims).double().square() / pixels - mean_b.square()
    covariance = (a * b).sum(dim=dims).double() / pixels - mean_a * mean_b
    return covariance / ((var_a.clamp(min=0) * var_b.clamp(min=0)).sqrt() + _EPS)


def _curvature_map(image: torch.Tensor) -> torch.Tensor:
    """Per-pixel spectral curvature k(p) of a (C, H, W) image (see ``scm``): (H, W) float64."""
    total = torch.zeros(image.shape[-2:], dtype=torch.float32, device=image.device)
    for chunk in _chunks(image, overlap=2):
        second = chunk[:-2] + chunk[2:]
        total += second.sub_(chunk[1:-1], alpha=2.0).abs_().sum(dim=0)
    return total.double() / (image.shape[0] - 2)
