"""The scene's spectral subspace (DESIGN §4a.2–3): a noise-whitened basis and its eigen-images.

Hyperspectral spectra lie close to a low-dimensional subspace. From a sample of a scene's
pixels we estimate every band's noise level σ_c (HySime-style: the residual of regressing the
band on all the others, read off the inverse covariance), whiten the bands by it, and take the
leading eigenvectors U of the whitened covariance. In original units the basis is
E = diag(σ)·U and a spectrum x has eigen-image coordinates

    z = Uᵀ diag(1/σ) (x − m)

so that white noise of the estimated levels becomes unit-variance white noise in every
component, and noisy bands weigh less in z. The rank k keeps the components whose signal power
exceeds the noise power they bring in (HySime's rule: whitened eigenvalue λ > 2), bounded to
``MIN_RANK`` ≤ k ≤ ``MAX_RANK``; the network always sees ``MAX_RANK`` channels, the unused ones
zero.

Samples that are missing (the validity mask) are handled by least squares over the pixel's
valid bands only, with the components' signal variance as a prior (a MAP estimate), so a pixel
with dead-line or lost bands still gets all of its coordinates. Bands that have no valid
sample at all get basis rows interpolated along wavelength from their neighbours (Akima's
piecewise cubic: smoother than straight lines between the neighbours, without the overshoot of a
global spline at a sharp absorption edge), so the reconstruction m + E·z fills them.

The closed-form estimate of the clean eigen-images (`shrink`) is an undecimated (à trous, B3
spline) wavelet transform with non-negative garrote shrinkage whose thresholds come from the
scene's sample (BayesShrink), so every tile is treated alike and tiles join seamlessly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

MIN_RANK = 4
MAX_RANK = 16
SIGNAL_EIGENVALUE = 2.0     # keep a whitened component whose eigenvalue exceeds this (HySime)
LEVELS = 3                  # wavelet levels of `shrink` (receptive field ±14 px)
MIN_SIGMA = 1e-5            # noise floor in [0, 1] units (16-bit quantisation is 1.5e-5)
_B3 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
FILL_SIGMAS = (1.0, 2.0, 4.0, 8.0)  # Gaussian widths of the normalised-convolution gap fill
FILL_ITERATIONS = 50        # biharmonic relaxation sweeps over the gaps
FILL_DAMPING = 0.6


@dataclass(frozen=True)
class SpectralBasis:
    """A scene's subspace in the units of the scaled cube.

    mean:        (C,) mean spectrum m.
    basis:       (C, K) E = diag(σ)·U, K = ``MAX_RANK``; columns ≥ ``rank`` are zero.
    weights:     (C,) 1/σ per band; 0 for bands without any valid sample.
    signal_std:  (K,) noise-free standard deviation of each eigen-image in noise units
                 (sqrt(λ − 1)); 1 for unused components.
    rank:        k, the number of components in use.
    thresholds:  (K, LEVELS) garrote thresholds of `shrink`, in noise units.
    positions:   (C,) wavelengths (or band numbers) of the bands, along which lost bands are
                 interpolated (`fill_lost_bands`).
    """

    mean: np.ndarray
    basis: np.ndarray
    weights: np.ndarray
    signal_std: np.ndarray
    rank: int
    thresholds: np.ndarray
    positions: np.ndarray | None = None

    @property
    def bands(self) -> int:
        return int(self.mean.shape[0])

    @property
    def lost_bands(self) -> np.ndarray:
        """(C,) bool: bands with no valid sample, filled from the basis."""
        return self.weights == 0

    @property
    def noise_sigma(self) -> np.ndarray:
        """(C,) estimated noise standard deviation per band (NaN for lost bands)."""
        with np.errstate(divide="ignore"):
            return np.where(self.weights > 0, 1.0 / np.where(self.weights > 0, self.weights, 1), np.nan)

    def to_dict(self) -> dict:
        """What a run's report records of the basis."""
        sigma = self.noise_sigma
        return {"rank": self.rank, "lost_bands": [int(b) + 1 for b in np.flatnonzero(self.lost_bands)],
                "noise_sigma_median": float(np.nanmedian(sigma)) if np.isfinite(sigma).any() else None,
                "signal_std": [round(float(s), 4) for s in self.signal_std[:self.rank]]}


def covariance(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (C,), sample covariance (C, C)) of (C, N) spectra."""
    mean = samples.mean(axis=1)
    centred = samples - mean[:, None]
    return mean, centred @ centred.T / max(1, samples.shape[1] - 1)


def noise_from_covariance(cov: np.ndarray) -> np.ndarray:
    """(C,) noise std of each band from the spectra's covariance Σ (C, C): the residual variance of
    band c regressed on all other bands is 1 / (Σ⁻¹)_cc (a small ridge keeps Σ invertible)."""
    ridge = 1e-8 * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    precision = np.linalg.inv(cov + ridge * np.eye(cov.shape[0]))
    return np.sqrt(1.0 / np.clip(np.diag(precision), 1e-30, None))


def _whitened_eigen(cov: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors of the covariance of the spectra divided by σ,
    diag(1/σ)·Σ·diag(1/σ) for their covariance Σ."""
    values, vectors = np.linalg.eigh(cov / np.outer(sigma, sigma))
    return values[::-1], vectors[:, ::-1]


def fit_basis(samples: np.ndarray, valid: np.ndarray, positions: np.ndarray | None = None,
              iterations: int = 2) -> SpectralBasis:
    """Estimate a scene's subspace from (C, N) sample spectra and their (C, N) validity.

    positions: (C,) wavelengths (or band numbers) along which lost bands are interpolated.
    Missing samples are first imputed by their band's mean, then `iterations` times by the
    current basis (an EM-style refinement), so dead lines and gaps do not steer the basis.
    """
    samples = np.asarray(samples, np.float64)
    valid = np.asarray(valid, bool)
    bands = samples.shape[0]
    positions = np.arange(bands, dtype=np.float64) if positions is None else np.asarray(positions, np.float64)
    have = valid.mean(axis=1) > 0.01
    if have.sum() < 3:
        raise ValueError("fewer than 3 bands have valid samples")
    x, ok = samples[have], valid[have]
    if not ok.all():
        band_mean = np.where(ok, x, 0.0).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
        x = np.where(ok, x, band_mean[:, None])
    for step in range(iterations + 1):
        mean, cov = covariance(x)
        levels = noise_from_covariance(cov)
        sigma = np.maximum(levels, max(MIN_SIGMA, 1e-3 * float(np.median(levels))))
        values, vectors = _whitened_eigen(cov, sigma)
        rank = int(np.clip((values > SIGNAL_EIGENVALUE).sum(), MIN_RANK, min(MAX_RANK, have.sum())))
        if step == iterations or ok.all():
            break
        u = vectors[:, :rank]
        white = (x - mean[:, None]) / sigma[:, None]
        x = np.where(ok, x, mean[:, None] + sigma[:, None] * (u @ (u.T @ white)))
    k = rank
    basis = np.zeros((bands, MAX_RANK))
    basis_have = sigma[:, None] * vectors[:, :k]
    full_mean = np.zeros(bands)
    full_mean[have] = mean
    basis[have, :k] = basis_have
    if not have.all():
        known, wanted = positions[have], positions[~have]
        basis[~have, :k] = akima(known, basis_have, wanted)
        full_mean[~have] = akima(known, mean[:, None], wanted)[:, 0]
    weights = np.zeros(bands)
    weights[have] = 1.0 / sigma
    signal_std = np.ones(MAX_RANK)
    signal_std[:k] = np.sqrt(np.maximum(values[:k] - 1.0, 1e-2))
    return SpectralBasis(full_mean, basis, weights, signal_std, k, np.zeros((MAX_RANK, LEVELS)), positions)


def akima(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Akima's piecewise-cubic interpolation of the columns of y (N, M) given at increasing x (N,),
    evaluated at `at` (P,) -> (P, M); constant beyond the ends, straight lines with fewer than 3
    points. Each interval's end slopes weigh the neighbouring secants by how much the secants
    beside them differ, so a kink bends only the intervals next to it."""
    x, y, at = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(at, np.float64)
    if x.size < 3:
        return np.stack([np.interp(at, x, col) for col in y.T], axis=1)
    secant = np.diff(y, axis=0) / np.diff(x)[:, None]                       # (N − 1, M)
    ends = (2 * secant[:1] - secant[1:2], 2 * secant[-1:] - secant[-2:-1])
    m = np.concatenate((2 * ends[0] - secant[:1], ends[0], secant, ends[1], 2 * ends[1] - secant[-1:]))
    left, right = np.abs(m[1:-2] - m[:-3]), np.abs(m[3:] - m[2:-1])        # (N, M) each
    weight = left + right
    flat = weight < 1e-12 * (np.abs(m).max() + 1e-30)
    slope = np.where(flat, 0.5 * (m[1:-2] + m[2:-1]),
                     (right * m[1:-2] + left * m[2:-1]) / np.where(flat, 1.0, weight))
    at = np.clip(at, x[0], x[-1])
    i = np.clip(np.searchsorted(x, at, side="right") - 1, 0, x.size - 2)
    h = (x[i + 1] - x[i])[:, None]
    t = (at - x[i])[:, None] / h
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[i] + h10 * h * slope[i] + h01 * y[i + 1] + h11 * h * slope[i + 1]


def with_thresholds(basis: SpectralBasis, z: torch.Tensor) -> SpectralBasis:
    """The basis with BayesShrink thresholds measured on sample eigen-images z (N, K, H, W); 0 for
    the components beyond the rank (never used, so not transformed)."""
    rank = basis.rank
    details = starlet(z[:, :rank])[0]
    noise = starlet_noise_levels()
    thresholds = np.zeros((MAX_RANK, LEVELS))
    for level, d in enumerate(details):
        var = d.double().pow(2).mean(dim=(0, 2, 3)).numpy()
        signal = np.sqrt(np.maximum(var - noise[level] ** 2, 1e-12))
        thresholds[:rank, level] = noise[level] ** 2 / signal
    return dataclasses.replace(basis, thresholds=thresholds)


# ----------------------------------------------------------------------------- projection

def _tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(a, dtype=like.dtype, device=like.device)


def project(basis: SpectralBasis, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Eigen-images z (B, K, H, W) of scaled cubes x (B, C, H, W); `valid` (B, C, H, W) bool or None.

    Fully valid pixels: z = Uᵀ diag(1/σ)(x − m). Pixels with some invalid bands: the MAP
    least-squares fit over their valid bands (prior: each component's signal variance). Pixels
    with no valid band get z = 0 here (see `fill_gaps`). Lost bands never count.
    """
    w = _tensor(basis.weights, x)
    e = _tensor(basis.basis, x)
    mean = _tensor(basis.mean, x)
    white_basis = e * w[:, None]                                   # (C, K) = U on bands with data
    # Uᵀ diag(w)(x − m) as one matrix product over the pixels, without a centred copy of the cube
    weights = white_basis * w[:, None]
    b, c, h, wd = x.shape
    z = (torch.matmul(weights.T, x.reshape(b, c, h * wd)) - (weights.T @ mean)[:, None]).reshape(b, -1, h, wd)
    if valid is None:
        return z
    if bool((w > 0).all()) and bool(valid.all()):  # every sample usable: no pixel to solve alone
        z[:, basis.rank:] = 0
        return z
    bands = w > 0
    usable = valid & bands[:, None, None]
    partial = ~usable.all(dim=1) & usable.any(dim=1)                # (B, H, W)
    prior = torch.diag(_tensor(1.0 / basis.signal_std ** 2, x))
    if partial.any() and not bool(bands.all()):
        # Where bands are lost in the whole scene, nearly every pixel has all the others: their MAP
        # fit is one linear map, applied as one matrix product (sorting every pixel's pattern took
        # seconds per 224-band tile); only the pixels missing more go through the patterns below.
        complete = valid[:, bands].all(dim=1)                        # (B, H, W)
        a = white_basis[bands]
        fit = torch.zeros(MAX_RANK, c, dtype=x.dtype, device=x.device)
        fit[:, bands] = torch.linalg.solve(a.T @ a + prior, a.T) * w[bands]
        fitted = (torch.matmul(fit, x.reshape(b, c, h * wd)) - (fit @ mean)[:, None]).reshape(b, -1, h, wd)
        z = torch.where(complete[:, None], fitted, z)
        partial &= ~complete
    if partial.any():
        patterns, inverse = torch.unique(usable.permute(0, 2, 3, 1)[partial], dim=0, return_inverse=True)
        pixels = (x.permute(0, 2, 3, 1)[partial] - mean) * w          # (P, C) centred, whitened
        solved = torch.empty(pixels.shape[0], MAX_RANK, dtype=x.dtype, device=x.device)
        for i, pattern in enumerate(patterns):
            rows = inverse == i
            a = white_basis[pattern]
            solved[rows] = torch.linalg.solve(a.T @ a + prior, a.T @ pixels[rows][:, pattern].T).T
        z.permute(0, 2, 3, 1)[partial] = solved
    z[:, basis.rank:] = 0
    return z


def reconstruct(basis: SpectralBasis, z: torch.Tensor) -> torch.Tensor:
    """m + E·z: (B, K, H, W) -> (B, C, H, W), from the first ``basis.rank`` eigen-images (the others
    are zero wherever they come from `project` or a restoration; skipping them and adding the mean
    in the same product saves most of this memory-bound step on a many-band tile)."""
    b, k, h, w = z.shape
    rank = min(basis.rank, k)
    e = _tensor(basis.basis[:, :rank], z)
    mean = _tensor(basis.mean, z)[:, None]
    flat = z[:, :rank].reshape(b, rank, h * w)
    out = torch.baddbmm(mean, e.expand(b, -1, -1), flat)
    return out.reshape(b, -1, h, w)


def fill_lost_bands(basis: SpectralBasis, cube: torch.Tensor, discard: np.ndarray | None = None) -> torch.Tensor:
    """Cubes (B, C, H, W) with every lost band (no valid sample in the scene) replaced, pixel by
    pixel, by the `akima` interpolation along wavelength of the pixel's other bands: where a
    whole band is missing, its neighbours in the restored spectrum say most about it. Bands
    flagged in `discard` (C,) are left as they are (the caller blanks them).

    Akima's curve between two known bands depends only on the three known bands either side,
    so each lost band reads just those (a few planes, whatever the band count)."""
    lost = basis.lost_bands
    if not lost.any() or lost.all():
        return cube
    wanted = lost if discard is None else lost & ~discard
    if not wanted.any():
        return cube
    positions = np.arange(basis.bands, dtype=np.float64) if basis.positions is None else basis.positions
    known = np.flatnonzero(~lost)
    interval = np.clip(np.searchsorted(positions[known], positions[wanted], side="right") - 1, 0, known.size - 1)
    b, c, h, w = cube.shape
    out = cube.clone()
    for i in np.unique(interval):
        targets = np.flatnonzero(wanted)[interval == i]
        near = known[max(0, i - 2):i + 4]
        values = cube[:, near].permute(1, 0, 2, 3).reshape(near.size, -1).double().cpu().numpy()
        filled = akima(positions[near], values, positions[targets])
        out[:, targets] = (torch.from_numpy(filled).to(device=cube.device, dtype=cube.dtype)
                           .reshape(targets.size, b, h, w).permute(1, 0, 2, 3))
    return out


def fill_gaps(z: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill eigen-image pixels where `known` (B, 1, H, W) is False with a smooth interpolation.

    A start by normalised convolution (Gaussian-weighted averages of the known pixels at widths
    ``FILL_SIGMAS``, the finest width with enough known neighbours), then ``FILL_ITERATIONS``
    damped Jacobi sweeps of the biharmonic equation Δ²z = 0 on the gap pixels (13-point stencil,
    damping 0.6 < 0.625 keeps the sweeps stable): the thin-plate interpolation that
    `skimage.restoration.inpaint_biharmonic` solves exactly, approached locally. Known pixels
    are unchanged.
    """
    if bool(known.all()):
        return z
    weight = known.to(z.dtype)
    out = z * weight
    filled = known.clone()
    for sigma in FILL_SIGMAS:
        kernel = _gaussian(sigma, z)
        num = _separable(z * weight, kernel)
        den = _separable(weight, kernel)
        take = ~filled & (den > 0.05)
        out = torch.where(take, num / den.clamp_min(1e-12), out)
        filled = filled | take
    for _ in range(FILL_ITERATIONS):
        out = torch.where(known, out, (1 - FILL_DAMPING) * out + FILL_DAMPING * _biharmonic_update(out))
    return out


def _biharmonic_update(z: torch.Tensor) -> torch.Tensor:
    """The Jacobi value of every pixel for Δ²z = 0: (8·N4 − 2·diagonals − far neighbours) / 20."""
    p = F.pad(z, (2, 2, 2, 2), mode="replicate")
    h, w = z.shape[-2:]

    def at(dy: int, dx: int) -> torch.Tensor:
        return p[..., 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]

    near = at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1)
    diagonal = at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1)
    far = at(-2, 0) + at(2, 0) + at(0, -2) + at(0, 2)
    return (8 * near - 2 * diagonal - far) / 20


def _gaussian(sigma: float, like: torch.Tensor) -> torch.Tensor:
    radius = int(round(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _separable(x: torch.Tensor, kernel: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """Convolve every channel of (B, C, H, W) with `kernel` along rows and columns (reflect padding).

    Written as a weighted sum of shifted copies: PyTorch's dilated convolution on the CPU is slow,
    and these kernels are short.
    """
    r = (kernel.numel() // 2) * dilation
    h, w = x.shape[-2:]
    mode = "reflect" if r < min(h, w) else "replicate"
    weights = kernel.tolist()
    rows = F.pad(x, (r, r, 0, 0), mode=mode)
    out = sum(wk * rows[..., :, k * dilation:k * dilation + w] for k, wk in enumerate(weights))
    cols = F.pad(out, (0, 0, r, r), mode=mode)
    return sum(wk * cols[..., k * dilation:k * dilation + h, :] for k, wk in enumerate(weights))


# ----------------------------------------------------------------------------- closed-form shrinkage

def starlet(z: torch.Tensor, levels: int = LEVELS) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Undecimated B3-spline wavelet transform: (details per level, coarse); z = coarse + Σ details."""
    kernel = torch.tensor(_B3, dtype=z.dtype, device=z.device)
    details, current = [], z
    for level in range(levels):
        smooth = _separable(current, kernel, dilation=2 ** level)
        details.append(current - smooth)
        current = smooth
    return details, current


@lru_cache(maxsize=1)
def starlet_noise_levels() -> np.ndarray:
    """(LEVELS,) std of each starlet level for unit white noise (measured once on a 256² draw)."""
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 1, 256, 256, generator=gen, dtype=torch.float64)
    return np.array([float(d[..., 16:-16, 16:-16].std()) for d in starlet(noise)[0]])


def shrink(basis: SpectralBasis, z: torch.Tensor) -> torch.Tensor:
    """Closed-form estimate of the clean eigen-images: garrote shrinkage of each starlet level of
    the first ``basis.rank`` ones; the others are 0."""
    rank = basis.rank
    details, coarse = starlet(z[:, :rank])
    t = _tensor(basis.thresholds[:rank], z)
    out = z.new_zeros(z.shape)
    out[:, :rank] = coarse
    for level, d in enumerate(details):
        t2 = t[:, level].pow(2)[None, :, None, None]
        out[:, :rank] += d * torch.clamp(1 - t2 / d.pow(2).clamp_min(1e-20), min=0)
    return out
