"""Blur kernels and the convolution that applies them: the Gaussian and motion PSFs of the
simulated degradations, also the true kernels the classical deblurring baselines are given."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .degrade_checks import odd_size, require


def gaussian_kernel(ksize: int) -> np.ndarray:
    """2-D Gaussian kernel (ksize × ksize, sums to 1) with σ = 0.3((ksize − 1)/2 − 1) + 0.8.

    The σ rule is OpenCV's default for a given size, which the paper's blur settings use.
    """
    ksize = odd_size(ksize, "ksize")
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
    size = odd_size(size, "size")
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
    require(np.ndim(kernel) == 2, "The blur kernel must be a 2-D array.")
    kh, kw = kernel.shape
    require(kh % 2 == 1 and kw % 2 == 1, "The blur kernel must have odd height and width.")
    require(x.shape[-2] > kh // 2 and x.shape[-1] > kw // 2,
             f"The image ({x.shape[-2]}×{x.shape[-1]}) is too small for a {kh}×{kw} kernel; "
             "use a larger image or a smaller kernel.")
    bands = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)
    weight = torch.from_numpy(np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32))
    padded = F.pad(bands, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    with torch.no_grad():
        out = F.conv2d(padded, weight[None, None])
    return out.squeeze(1).numpy()
