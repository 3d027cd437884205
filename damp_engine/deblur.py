"""Blind removal of Gaussian blur from noise-free scenes, in closed form (DESIGN §4a).

Blur takes away a scene's high spatial frequencies in a way its power spectrum shows: the
radial power of the first eigen-image falls off faster than a sharp scene's. A small regressor
(`BlurEstimator`, fitted on the training scenes by ``scripts/fit_blur_estimator.py``) reads the
blur's width σ off that spectrum; the eigen-images are then deconvolved by a separable Wiener
filter of that width before the network refines them, as it refines the wavelet estimate for
noise. Estimates below ``MIN_BLUR`` are taken as a sharp scene and change nothing.
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
SECTORS = 3             # angular sectors of the spectrum, from horizontal to vertical frequencies
MIN_BLUR = 0.6          # σ (pixels) below which a scene counts as sharp
MAX_BLUR = 3.5          # widest blur deconvolved
MAX_SPREAD = 0.6        # σ disagreement between sectors above which a blur is not Gaussian
WIENER_BALANCE = 1e-4   # weight of the second-difference regulariser of the Wiener filter
MAX_RADIUS = 64         # taps either side of the deconvolution kernel at most
ESTIMATOR_PATH = Path(__file__).with_name("blur_estimator.json")


def spectrum_features(images: np.ndarray) -> np.ndarray:
    """(SECTORS, SPECTRUM_BINS − 1) log10 DCT power of images (N, h, w), summed over the N images,
    by radial frequency in each of ``SECTORS`` angular sectors, relative to each sector's lowest
    bin (so independent of the images' contrast).

    A Gaussian blur takes the same frequencies away in every direction; a motion blur leaves one
    direction sharp, and the sector holding it says so (`estimate_blur` takes the least blurred).
    """
    n, h, w = images.shape
    fy = np.arange(h)[:, None] / (2 * h)
    fx = np.arange(w)[None] / (2 * w)
    edges = np.linspace(0.0, 0.5, SPECTRUM_BINS + 1)
    edges[0] = 0.5 / max(h, w)
    ring = np.digitize(np.hypot(fy, fx), edges) - 1
    sector = np.minimum((np.arctan2(fy, fx) / (math.pi / 2) * SECTORS).astype(int), SECTORS - 1)
    power = np.zeros((SECTORS, SPECTRUM_BINS))
    for image in images.astype(np.float64):
        spectrum = _dct2(image - image.mean()) ** 2
        for a in range(SECTORS):
            for b in range(SPECTRUM_BINS):
                selected = spectrum[(sector == a) & (ring == b)]
                power[a, b] += selected.mean() if selected.size else 0.0
    log_power = np.log10(power + 1e-30)
    return (log_power - log_power[:, :1])[:, 1:]


def _dct2(image: np.ndarray) -> np.ndarray:
    """Orthonormal 2-D DCT-II (the spectrum of the image's mirror extension: no edge leakage)."""
    return _dct_matrix(image.shape[0]) @ image @ _dct_matrix(image.shape[1]).T


@lru_cache(maxsize=8)
def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.arange(n)[:, None], np.arange(n)[None]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


@dataclass(frozen=True)
class BlurEstimator:
    """σ of a Gaussian blur from one sector of `spectrum_features`: a two-hidden-layer perceptron (GELU)."""

    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def __call__(self, features: np.ndarray) -> float:
        h = (np.asarray(features, np.float64) - self.mean) / self.std
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


def estimate_blur(first_components: np.ndarray, estimator: BlurEstimator | None = None) -> float:
    """σ (pixels) of the Gaussian blur of a scene from its first eigen-image in sample windows
    (N, h, w); 0 for a sharp scene or a blur that is not Gaussian (see `combine_sectors`)."""
    estimator = estimator or bundled_estimator()
    return combine_sectors([estimator(f) for f in spectrum_features(first_components)])


def combine_sectors(sigmas: list[float]) -> float:
    """One σ from the sectors' estimates: their least, or 0 when that is below ``MIN_BLUR`` (a
    sharp scene) or the sectors disagree by more than ``MAX_SPREAD`` (a blur along one direction,
    such as motion, which a Gaussian deconvolution would turn into ringing)."""
    low, high = min(sigmas), max(sigmas)
    if low < MIN_BLUR or high - low > MAX_SPREAD:
        return 0.0
    return min(low, MAX_BLUR)


@lru_cache(maxsize=32)
def inverse_kernel(sigma: float) -> np.ndarray:
    """(2r + 1,) taps of the 1-D Wiener inverse of a Gaussian of width sigma, regularised by the
    second difference; applied along rows and columns it deconvolves the 2-D blur."""
    n = 512
    f = np.fft.fftfreq(n)
    gain = np.exp(-2 * (math.pi * sigma * f) ** 2)
    rough = (2 - 2 * np.cos(2 * math.pi * f)) ** 2
    taps = np.fft.fftshift(np.real(np.fft.ifft(gain / (gain ** 2 + WIENER_BALANCE * rough))))
    centre = n // 2
    energy = np.cumsum((taps[centre:] ** 2)[::-1])[::-1]  # energy at distance ≥ d from the centre
    radius = int(min(MAX_RADIUS, np.argmax(energy < 1e-6 * energy[0])))
    return taps[centre - radius:centre + radius + 1].astype(np.float32)


def deconvolution_radius(sigma: float) -> int:
    """Pixels of context either side that deconvolving a blur of width sigma reads."""
    return inverse_kernel(round(float(sigma), 3)).size // 2 if sigma else 0


def deconvolve(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Images (B, K, H, W) deconvolved of a Gaussian blur of width sigma (mirror edges)."""
    if not sigma:
        return images
    taps = torch.as_tensor(inverse_kernel(round(float(sigma), 3)), dtype=images.dtype, device=images.device)
    r = taps.numel() // 2
    b, k, h, w = images.shape
    flat = images.reshape(b * k, 1, h, w)
    mode = "reflect" if min(h, w) > r else "replicate"
    flat = F.conv2d(F.pad(flat, (r, r, 0, 0), mode=mode), taps.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, r, r), mode=mode), taps.view(1, 1, -1, 1))
    return flat.reshape(b, k, h, w)
