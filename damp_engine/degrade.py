"""Seeded synthesis of every degradation DAMP is trained or tested on.

One module serves training, the tests, the "Simulate degradation" algorithm and the benchmarks,
so that a degradation called by the same name is the same everywhere.

Conventions
-----------
- Cubes are numpy float32 arrays (C, H, W) with clean values about [0, 1]; the input is never
  modified and the output has the same shape and dtype float32.
- Noise levels ``sigma`` / ``sigmas`` are in 0-255 units as in the paper: the standard deviation
  added to [0, 1] data is sigma / 255.
- Nothing is clipped after noise or resampling: clipping zero-mean noise at 0 biases dark pixels
  (DESIGN §7). Poisson counts are non-negative by construction.
- Every random choice comes from ``numpy.random.default_rng(seed)``, so the returned
  :class:`Degradation` replays exactly: ``degrade(x, d.kind, d.seed, **d.params)``.

Kinds (parameter defaults in :data:`PARAMETERS`)
------------------------------------------------
gaussian_noise  i.i.d. Gaussian noise of std sigma/255 on every band.
noniid_noise    Gaussian noise whose std is drawn per band from ``sigmas`` (/255).
poisson         shot noise, y = Poisson(max(x, 0) · scale) / scale (zero-shot only).
gaussian_blur   Gaussian kernel of size ksize (odd), σ = 0.3((ksize − 1)/2 − 1) + 0.8.
motion_blur     line kernel of length ``size`` at ``angle`` degrees (zero-shot only).
sr              bicubic (antialiased) downsampling by ``factor`` (2 or 4), then pixel
                replication back onto the original grid.
inpaint         a ``fraction`` of the pixels set to 0, the same pixels in every band.
band_loss       a ``fraction`` of the bands (at least one) set to 0 entirely.
stripes         on a ``band_fraction`` of the bands: a constant offset in [−amplitude, amplitude]
                added to each of a random 5-15 % of the columns (vertical stripes).
deadlines       on a ``band_fraction`` of the bands: a random 3-10 % of the columns set to 0.
impulse         on a ``band_fraction`` of the bands: a ``fraction`` of the pixels set to 0 or 1
                (salt and pepper, equally likely).
complex         noniid_noise on every band, then one of stripes / deadlines / impulse
                (``extra``; "random" draws one) on a ``band_fraction`` of the bands.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DampInputError
from .names import KINDS, PARAMETERS, SPARSE_EXTRAS, TRAIN_KINDS, ZERO_SHOT_KINDS

STRIPE_COLUMNS = (0.05, 0.15)    # share of columns striped per affected band
DEADLINE_COLUMNS = (0.03, 0.10)  # share of columns dead per affected band


@dataclass
class Degradation:
    """The record of exactly what :func:`degrade` applied.

    ``params`` holds every parameter with defaults filled in, so the record replays the
    degradation; ``bands`` lists the affected bands (0-based); ``pixel_fraction`` is the share
    of the cube's values (band × row × column) changed by a sparse corruption (inpaint,
    stripes, deadlines, impulse, and complex's extra), None where every value of the affected
    bands changes.
    """

    kind: str
    params: dict
    seed: int
    bands: list[int]
    pixel_fraction: float | None = None

    def to_dict(self) -> dict:
        """Return the record as plain JSON-serialisable Python types."""
        return asdict(self)


# ----------------------------------------------------------------------------- kernels and blur

def gaussian_kernel(ksize: int) -> np.ndarray:
    """2-D Gaussian kernel (ksize × ksize, sums to 1) with σ = 0.3((ksize − 1)/2 − 1) + 0.8.

    The σ rule is OpenCV's default for a given size, which the paper's blur settings use.
    """
    ksize = _odd_size(ksize, "ksize")
    sigma = 0.3 * ((ksize - 1) / 2 - 1) + 0.8
    t = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2
    g = np.exp(-(t ** 2) / (2 * sigma ** 2))
    kernel = np.outer(g, g)
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(size: int, angle: float) -> np.ndarray:
    """Linear motion kernel (size × size, sums to 1): a centred line of length ``size``.

    ``angle`` is in degrees, counter-clockwise from the +column axis as seen on screen
    (rows grow downwards). The segment is sampled finely at its midpoints and splatted
    bilinearly (mass past the grid edge folds onto the edge pixel), so an axis-aligned line is
    exactly uniform and oblique angles give an anti-aliased kernel rather than a staircase.
    """
    size = _odd_size(size, "size")
    theta = math.radians(float(angle))
    centre = (size - 1) / 2
    samples = 8 * size
    t = (np.arange(samples) + 0.5) * size / samples - size / 2
    cols = centre + t * math.cos(theta)
    rows = centre - t * math.sin(theta)
    kernel = np.zeros((size, size), dtype=np.float64)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc),
                      (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        r, c = np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)
        np.add.at(kernel, (r, c), w)
    return (kernel / kernel.sum()).astype(np.float32)


def blur(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve every band of ``x`` (C, H, W) with the 2-D ``kernel``, reflect padding.

    A true convolution (the kernel is flipped), all bands in one torch call. Returns float32
    of the same shape. Baselines use it with the true kernel.
    """
    _require(np.ndim(kernel) == 2, "The blur kernel must be a 2-D array.")
    kh, kw = kernel.shape
    _require(kh % 2 == 1 and kw % 2 == 1, "The blur kernel must have odd height and width.")
    _require(x.shape[-2] > kh // 2 and x.shape[-1] > kw // 2,
             f"The image ({x.shape[-2]}×{x.shape[-1]}) is too small for a {kh}×{kw} kernel; "
             "use a larger image or a smaller kernel.")
    bands = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)
    weight = torch.from_numpy(np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32))
    padded = F.pad(bands, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    with torch.no_grad():
        out = F.conv2d(padded, weight[None, None])
    return out.squeeze(1).numpy()


# ----------------------------------------------------------------------------- the kinds

def _gaussian_noise(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Add i.i.d. Gaussian noise of std sigma/255 to every band."""
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    return x + np.float32(p["sigma"] / 255) * noise, _all_bands(x), None


def _noniid_noise(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Add Gaussian noise whose std is drawn per band from ``sigmas`` (/255)."""
    stds = rng.choice(np.asarray(p["sigmas"], dtype=np.float64), size=x.shape[0]) / 255
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    return x + stds.astype(np.float32)[:, None, None] * noise, _all_bands(x), None


def _poisson(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Shot noise: photon counts Poisson(max(x, 0) · scale), rescaled by 1/scale."""
    counts = rng.poisson(np.maximum(x, 0).astype(np.float64) * p["scale"])
    return (counts / p["scale"]).astype(np.float32), _all_bands(x), None


def _gaussian_blur(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Blur every band with :func:`gaussian_kernel` (ksize)."""
    return blur(x, gaussian_kernel(p["ksize"])), _all_bands(x), None


def _motion_blur(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Blur every band with :func:`motion_kernel` (size, angle)."""
    return blur(x, motion_kernel(p["size"], p["angle"])), _all_bands(x), None


def _sr(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Bicubic antialiased downsampling by ``factor``, then pixel replication back.

    The cube is first padded (edge replication) to a multiple of the factor so that the scale
    is exactly ``factor`` and the factor × factor blocks start at the top-left pixel; the
    replicated result is cropped back to H × W.
    """
    f = p["factor"]
    _, h, w = x.shape
    cube = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(0)
    cube = F.pad(cube, (0, -w % f, 0, -h % f), mode="replicate")
    with torch.no_grad():
        low = F.interpolate(cube, size=(cube.shape[2] // f, cube.shape[3] // f), mode="bicubic",
                            antialias=True, align_corners=False)
    up = low[0].repeat_interleave(f, dim=1).repeat_interleave(f, dim=2)
    return up[:, :h, :w].contiguous().numpy(), _all_bands(x), None


def _inpaint(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, float]:
    """Set exactly round(fraction · H · W) random pixels to 0 in every band."""
    _, h, w = x.shape
    mask = _exact_masks(rng, 1, h * w, round(p["fraction"] * h * w)).reshape(h, w)
    y = x.copy()
    y[:, mask] = 0
    return y, _all_bands(x), float(mask.mean())


def _band_loss(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, None]:
    """Set round(fraction · C) random bands (at least one, never all) to 0."""
    c = x.shape[0]
    _require(c >= 2, "band_loss needs at least 2 bands.")
    n = min(max(1, round(p["fraction"] * c)), c - 1)
    bands = sorted(int(b) for b in rng.choice(c, size=n, replace=False))
    y = x.copy()
    y[bands] = 0
    return y, bands, None


def _stripes(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, float]:
    """Add a constant offset to a random 5-15 % of the columns of a share of the bands."""
    y, bands = x.copy(), _pick_bands(rng, x.shape[0], p["band_fraction"])
    touched = 0
    for b in bands:
        cols = _pick_columns(rng, x.shape[2], STRIPE_COLUMNS)
        offsets = rng.uniform(-p["amplitude"], p["amplitude"], size=cols.size)
        y[b][:, cols] += offsets.astype(np.float32)
        touched += cols.size * x.shape[1]
    return y, bands, touched / x.size


def _deadlines(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, float]:
    """Set a random 3-10 % of the columns of a share of the bands to 0."""
    y, bands = x.copy(), _pick_bands(rng, x.shape[0], p["band_fraction"])
    touched = 0
    for b in bands:
        cols = _pick_columns(rng, x.shape[2], DEADLINE_COLUMNS)
        y[b][:, cols] = 0
        touched += cols.size * x.shape[1]
    return y, bands, touched / x.size


def _impulse(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, float]:
    """Salt and pepper: in a share of the bands, a ``fraction`` of the pixels set to 0 or 1."""
    _, h, w = x.shape
    bands = _pick_bands(rng, x.shape[0], p["band_fraction"])
    hit = _exact_masks(rng, len(bands), h * w, round(p["fraction"] * h * w)).reshape(-1, h, w)
    salt = rng.random(hit.shape) < 0.5
    y = x.copy()
    y[bands] = np.where(hit, salt.astype(np.float32), x[bands])
    return y, bands, float(hit.sum()) / x.size


def _complex(x: np.ndarray, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, list, float]:
    """Non-i.i.d. noise on every band, then one sparse corruption on a share of the bands.

    The extra is always drawn (then overridden when ``extra`` names one) so that the random
    stream, and hence the output, is the same whether "random" or its outcome is replayed;
    ``p["extra"]`` is updated to the extra applied, so the record names it.
    """
    drawn = SPARSE_EXTRAS[int(rng.integers(len(SPARSE_EXTRAS)))]
    extra = p["extra"] = drawn if p["extra"] == "random" else p["extra"]
    noisy, _, _ = _noniid_noise(x, rng, {"sigmas": p["sigmas"]})
    extra_params = {**PARAMETERS[extra], "band_fraction": p["band_fraction"]}
    y, _, fraction = _APPLY[extra](noisy, rng, extra_params)
    return y, _all_bands(x), fraction


_APPLY: dict[str, Callable[..., tuple[np.ndarray, list, float | None]]] = {
    "gaussian_noise": _gaussian_noise, "noniid_noise": _noniid_noise, "poisson": _poisson,
    "gaussian_blur": _gaussian_blur, "motion_blur": _motion_blur, "sr": _sr,
    "inpaint": _inpaint, "band_loss": _band_loss, "stripes": _stripes,
    "deadlines": _deadlines, "impulse": _impulse, "complex": _complex,
}


# ----------------------------------------------------------------------------- public entry points

def degrade(x: np.ndarray, kind: str, seed: int = 0, **params: Any) -> tuple[np.ndarray, Degradation]:
    """Apply degradation ``kind`` to the cube ``x`` (C, H, W) with a seeded random stream.

    Parameters not given take the defaults in :data:`PARAMETERS`. Returns the degraded cube
    (float32, same shape; ``x`` is not modified) and the :class:`Degradation` record.
    Raises :class:`DampInputError` for an unknown kind or parameter, a bad value, or a cube
    that is not 3-D.
    """
    cube = _as_cube(x)
    resolved = _resolve_params(kind, params)
    seed = _seed(seed)
    y, bands, fraction = _APPLY[kind](cube, np.random.default_rng(seed), resolved)
    record = Degradation(kind=kind, params=resolved, seed=seed, bands=[int(b) for b in bands],
                         pixel_fraction=fraction)
    return y.astype(np.float32, copy=False), record


def sample_training_degradation(rng: np.random.Generator) -> tuple[str, dict]:
    """Draw a kind and its parameters from the paper's training mix, kinds equally likely.

    Gaussian noise σ ∈ U[30, 70]; Gaussian blur ksize ∈ {9, 15}; SR factor ∈ {2, 4};
    inpainting fraction ∈ U[0.7, 0.8]; band loss fraction ∈ U[0.1, 0.2]; complex
    (remote-sensing noise, extra drawn by :func:`degrade`). Never a zero-shot kind.
    """
    kind = TRAIN_KINDS[int(rng.integers(len(TRAIN_KINDS)))]
    draw = {
        "gaussian_noise": lambda: {"sigma": float(rng.uniform(30, 70))},
        "gaussian_blur": lambda: {"ksize": int(rng.choice([9, 15]))},
        "sr": lambda: {"factor": int(rng.choice([2, 4]))},
        "inpaint": lambda: {"fraction": float(rng.uniform(0.7, 0.8))},
        "band_loss": lambda: {"fraction": float(rng.uniform(0.1, 0.2))},
        "complex": lambda: {},
    }
    return kind, draw[kind]()


# ----------------------------------------------------------------------------- validation

def _resolve_params(kind: str, params: dict) -> dict:
    """Check the kind and parameter names, fill in defaults and validate every value."""
    if kind not in PARAMETERS:
        raise DampInputError(f"Unknown degradation kind {kind!r}; choose one of: {', '.join(KINDS)}.")
    unknown = sorted(set(params) - set(PARAMETERS[kind]))
    if unknown:
        raise DampInputError(f"Unknown parameter(s) {', '.join(unknown)} for {kind!r}; "
                             f"it accepts: {', '.join(PARAMETERS[kind])}.")
    merged = {**PARAMETERS[kind], **params}
    return {name: _VALIDATE[name](value, kind) for name, value in merged.items()}


def _sigma(value: Any, kind: str) -> float:
    """A noise level in 0-255 units, ≥ 0."""
    return _number(value, f"{kind}: sigma", low=0.0)


def _sigmas(value: Any, kind: str) -> list[float]:
    """A non-empty list of noise levels in 0-255 units, each ≥ 0."""
    _require(isinstance(value, (list, tuple)) and len(value) > 0,
             f"{kind}: sigmas must be a non-empty list of noise levels (0-255 units), e.g. [10, 30, 50, 70].")
    return [_number(v, f"{kind}: sigmas", low=0.0) for v in value]


def _scale(value: Any, kind: str) -> float:
    """Poisson scale (photons per unit intensity), > 0."""
    scale = _number(value, f"{kind}: scale", low=0.0)
    _require(scale > 0, f"{kind}: scale must be > 0 (e.g. 10 to 100).")
    return scale


def _kernel_size(value: Any, kind: str) -> int:
    """An odd kernel size ≥ 3."""
    return _odd_size(value, f"{kind}: kernel size")


def _angle(value: Any, kind: str) -> float:
    """A motion direction in degrees."""
    return _number(value, f"{kind}: angle")


def _factor(value: Any, kind: str) -> int:
    """SR factor: 2 or 4."""
    _require(_is_number(value) and value in (2, 4), f"{kind}: factor must be 2 or 4, not {value!r}.")
    return int(value)


def _fraction(value: Any, kind: str) -> float:
    """A share strictly between 0 and 1."""
    fraction = _number(value, f"{kind}: fraction")
    _require(0 < fraction < 1, f"{kind}: fraction must be between 0 and 1 (exclusive), not {value!r}.")
    return fraction


def _band_fraction(value: Any, kind: str) -> float:
    """A share of bands in (0, 1]."""
    fraction = _number(value, f"{kind}: band_fraction")
    _require(0 < fraction <= 1, f"{kind}: band_fraction must be in (0, 1], not {value!r}.")
    return fraction


def _amplitude(value: Any, kind: str) -> float:
    """A stripe amplitude ≥ 0 in data units."""
    return _number(value, f"{kind}: amplitude", low=0.0)


def _extra(value: Any, kind: str) -> str:
    """The sparse corruption of complex: one of SPARSE_EXTRAS or "random"."""
    choices = ("random", *SPARSE_EXTRAS)
    _require(value in choices, f"{kind}: extra must be one of {', '.join(choices)}, not {value!r}.")
    return str(value)


_VALIDATE: dict[str, Callable[[Any, str], Any]] = {
    "sigma": _sigma, "sigmas": _sigmas, "scale": _scale, "ksize": _kernel_size,
    "size": _kernel_size, "angle": _angle, "factor": _factor, "fraction": _fraction,
    "band_fraction": _band_fraction, "amplitude": _amplitude, "extra": _extra,
}


def _is_number(value: Any) -> bool:
    """True for real numbers (bool excluded) that are finite."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


def _number(value: Any, what: str, low: float | None = None) -> float:
    """``value`` as a float, checked to be a finite number ≥ ``low``."""
    _require(_is_number(value), f"{what} must be a number, not {value!r}.")
    if low is not None:
        _require(value >= low, f"{what} must be ≥ {low:g}, not {value!r}.")
    return float(value)


def _odd_size(value: Any, what: str) -> int:
    """``value`` as an int, checked to be an odd integer ≥ 3."""
    ok = _is_number(value) and float(value).is_integer() and value >= 3 and int(value) % 2 == 1
    _require(ok, f"{what} must be an odd integer ≥ 3 (e.g. 9 or 15), not {value!r}.")
    return int(value)


def _seed(seed: Any) -> int:
    """The seed as a non-negative int."""
    ok = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0
    _require(ok, f"The seed must be a non-negative integer, not {seed!r}.")
    return int(seed)


def _as_cube(x: Any) -> np.ndarray:
    """``x`` as a float32 (C, H, W) array (a copy only where the dtype changes)."""
    cube = np.asarray(x, dtype=np.float32)
    _require(cube.ndim == 3 and min(cube.shape) > 0,
             f"Expected a non-empty cube of shape (bands, rows, columns), got shape {cube.shape}.")
    return cube


def _require(condition: bool, message: str) -> None:
    """Raise DampInputError(message) unless ``condition`` holds."""
    if not condition:
        raise DampInputError(message)


# ----------------------------------------------------------------------------- random selections

def _all_bands(x: np.ndarray) -> list[int]:
    """Every band index of ``x``."""
    return list(range(x.shape[0]))


def _pick_bands(rng: np.random.Generator, n_bands: int, fraction: float) -> list[int]:
    """round(fraction · n_bands) distinct random bands (at least one), sorted."""
    n = min(max(1, round(fraction * n_bands)), n_bands)
    return sorted(int(b) for b in rng.choice(n_bands, size=n, replace=False))


def _pick_columns(rng: np.random.Generator, width: int, share: tuple[float, float]) -> np.ndarray:
    """A random share (drawn uniformly in ``share``) of distinct columns, at least one."""
    n = max(1, round(rng.uniform(*share) * width))
    return np.sort(rng.choice(width, size=min(n, width), replace=False))


def _exact_masks(rng: np.random.Generator, rows: int, length: int, count: int) -> np.ndarray:
    """A (rows, length) bool array with exactly ``count`` random True entries in each row."""
    mask = np.zeros((rows, length), dtype=bool)
    if count > 0:
        chosen = np.argpartition(rng.random((rows, length)), count - 1, axis=1)[:, :count]
        np.put_along_axis(mask, chosen, True, axis=1)
    return mask
