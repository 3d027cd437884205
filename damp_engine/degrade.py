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
- The blur kernels and their convolution are ``damp_engine.kernels``; the checks of a kind and
  its parameters, before anything is drawn, ``damp_engine.degrade_checks``.

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

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .degrade_checks import as_cube, check_seed, require, resolve_params
from .kernels import blur, gaussian_kernel, motion_kernel
from .names import PARAMETERS, SPARSE_EXTRAS, TRAIN_KINDS

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
    require(c >= 2, "band_loss needs at least 2 bands.")
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
    cube = as_cube(x)
    resolved = resolve_params(kind, params)
    seed = check_seed(seed)
    y, bands, fraction = _APPLY[kind](cube, np.random.default_rng(seed), resolved)
    record = Degradation(kind=kind, params=resolved, seed=seed, bands=[int(b) for b in bands],
                         pixel_fraction=fraction)
    return y.astype(np.float32, copy=False), record


TRAIN_NOISE_KINDS: tuple[str, ...] = ("gaussian_noise", "complex")  # the training kinds that add noise


def sample_training_degradation(rng: np.random.Generator, noise_weight: float = 1.0) -> tuple[str, dict]:
    """Draw a kind and its parameters from the paper's training mix, kinds equally likely, or each
    of the ``TRAIN_NOISE_KINDS`` ``noise_weight`` times as likely as each other kind.

    Gaussian noise σ ∈ U[30, 70]; Gaussian blur ksize ∈ {9, 15}; SR factor ∈ {2, 4};
    inpainting fraction ∈ U[0.7, 0.8]; band loss fraction ∈ U[0.1, 0.2]; complex
    (remote-sensing noise, extra drawn by :func:`degrade`). Never a zero-shot kind.
    """
    if noise_weight == 1.0:
        kind = TRAIN_KINDS[int(rng.integers(len(TRAIN_KINDS)))]
    else:
        weights = np.array([noise_weight if k in TRAIN_NOISE_KINDS else 1.0 for k in TRAIN_KINDS])
        kind = TRAIN_KINDS[int(rng.choice(len(TRAIN_KINDS), p=weights / weights.sum()))]
    draw = {
        "gaussian_noise": lambda: {"sigma": float(rng.uniform(30, 70))},
        "gaussian_blur": lambda: {"ksize": int(rng.choice([9, 15]))},
        "sr": lambda: {"factor": int(rng.choice([2, 4]))},
        "inpaint": lambda: {"fraction": float(rng.uniform(0.7, 0.8))},
        "band_loss": lambda: {"fraction": float(rng.uniform(0.1, 0.2))},
        "complex": lambda: {},
    }
    return kind, draw[kind]()


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
