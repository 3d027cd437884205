"""Classical restoration baselines: what a hyperspectral analyst would pick, task by task.

Every baseline is a function ``(degraded (C, H, W) float32, record) -> estimate (C, H, W)``
where ``record`` is the :class:`damp_engine.degrade.Degradation` that made ``degraded``. A
baseline uses the record only for what a user of the data would really know, and is generous
where a classical method needs a parameter:

noise (Gaussian)   the true σ, for the methods that take one (wavelet, TV, BM4D); FastHyDe
                   estimates its own noise statistics (HySime), as it is designed to.
noise (complex)    per-band σ *estimated* from the data (median absolute deviation of the finest
                   diagonal wavelet coefficients, ``skimage.restoration.estimate_sigma``): the
                   record keeps the σ choices, not which band drew which, and an analyst would
                   estimate them. Stripes, dead lines and impulses get no special treatment.
noise (Poisson)    the true scale (photons per unit intensity, i.e. the sensor gain), for the
                   Anscombe transform; the transformed data have unit noise σ.
blur               the true kernel (non-blind deconvolution: an upper bound on what a user
                   without the kernel gets).
super-resolution   the factor and the grid convention of ``degrade`` (a user knows the sensor's
                   pixel size).
inpainting         the true mask of missing pixels (a user knows which pixels are nodata),
                   replayed from the record's seed.
band loss          the lost bands (a user knows which bands are empty).

BM4D (package ``bm4d``) is under a non-commercial licence: it is imported here, inside one
function, for benchmarks only; the engine never imports it and it is never shipped.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pywt
import torch
import torch.nn.functional as F
from skimage.restoration import (denoise_tv_chambolle, denoise_wavelet, estimate_sigma,
                                 inpaint_biharmonic, richardson_lucy, wiener)

from damp_engine.degrade import Degradation, degrade
from damp_engine.kernels import gaussian_kernel, motion_kernel

Baseline = Callable[[np.ndarray, Degradation], np.ndarray]
Denoiser = Callable[[np.ndarray, np.ndarray], np.ndarray]

NOISE_KINDS = ("gaussian_noise", "noniid_noise", "complex", "poisson")
BLUR_KINDS = ("gaussian_blur", "motion_blur")

WAVELET, WAVELET_LEVELS = "sym8", 4        # best of {sym4, db4, sym8} × {3, 4} levels on two training crops
TV_WEIGHT_PER_SIGMA = 1.0                  # best of 1–5 σ on three training crops (the discrepancy
                                           # principle, residual std = σ, over-smooths: 1–11 dB worse)
FASTHYDE_SUBSPACE = 10                     # eigen-images kept (the package's default)
WIENER_BALANCE = {"gaussian_blur": 1e-5,   # best of 1e-5 … 1e-1 on two training scenes;
                  "motion_blur": 1e-1}     # the motion kernel's spectral zeros need more damping
RL_ITERATIONS = 30


# ----------------------------------------------------------------------------- denoisers (C, H, W), σ per band

def wavelet_denoise(cube: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Band-wise wavelet shrinkage (BayesShrink, soft thresholds per sub-band) with σ per band.

    Four levels of ``sym8`` (fewer on small images) beat the scikit-image default of
    "maximum − 3" levels, which leaves coarse-scale noise at high σ.
    """
    levels = min(WAVELET_LEVELS, pywt.dwt_max_level(min(cube.shape[1:]), WAVELET))
    return np.stack([denoise_wavelet(band, sigma=float(s), wavelet=WAVELET, wavelet_levels=max(1, levels),
                                     method="BayesShrink", mode="soft", rescale_sigma=True)
                     for band, s in zip(cube, sigmas)]).astype(np.float32)


def tv_denoise(cube: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Band-wise total-variation denoising (Chambolle) with weight ``TV_WEIGHT_PER_SIGMA · σ``."""
    return np.stack([denoise_tv_chambolle(band, weight=TV_WEIGHT_PER_SIGMA * float(s))
                     for band, s in zip(cube, sigmas)]).astype(np.float32)


def fasthyde_denoise(cube: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """FastHyDe (package ``hyde-images``): low-rank subspace + BM3D on the eigen-images.

    ``sigmas`` is not used: FastHyDe normalises each band and estimates the noise covariance
    itself (HySime), so per-band noise levels are absorbed. Its ``iid=False`` path is not used
    because in hyde-images 0.4.3 the re-transform takes an element-wise square root of a matrix
    product and returns a wrong image (13 dB where ``iid=True`` gives 38–42 dB on a CAVE crop).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from hyde import FastHyDe

        image = torch.from_numpy(np.ascontiguousarray(cube.transpose(1, 2, 0), dtype=np.float32))
        out = FastHyDe()(image, noise_type="additive", iid=True,
                         k_subspace=min(FASTHYDE_SUBSPACE, cube.shape[0]))
    return out.numpy().transpose(2, 0, 1).astype(np.float32)


def bm4d_denoise(cube: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """BM4D (package ``bm4d``, non-commercial licence: benchmarks only) on the whole cube.

    BM4D takes one σ; bands of different σ are first scaled to the mean σ and scaled back.
    """
    import bm4d

    gain = (np.mean(sigmas) / np.maximum(sigmas, 1e-12)).astype(np.float32)[:, None, None]
    volume = np.ascontiguousarray((cube * gain).transpose(1, 2, 0))
    out = bm4d.bm4d(volume, float(np.mean(sigmas))).transpose(2, 0, 1)
    return (out / gain).astype(np.float32)


# ----------------------------------------------------------------------------- DAMP's closed form

def subspace_closed_form(cube: np.ndarray, sigmas: np.ndarray | None = None) -> np.ndarray:
    """The network's starting point (DESIGN §4a) with no network, as `damp restore` computes it:
    the one scene analysis of the cube written as a raster (its scaling, sample windows, noise-
    whitened basis, blur width and coarse blocks), least squares over each pixel's valid bands,
    wavelet shrinkage (or deconvolution, or back-projection) of the eigen-images, gaps filled from
    the basis; a noise-free sharp scene keeps its valid samples. The cube is one tile (the suite's
    crops are smaller than `damp restore`'s), so DAMP − this is what the network adds. Estimates
    its own noise (``sigmas`` is ignored), as `damp restore` does."""
    from damp_engine.coarse import interpolate_blocks
    from damp_engine.evaluation import write_cube
    from damp_engine.raster import RasterReader
    from damp_engine.restoration import restore_cube
    from damp_engine.scene_analysis import analyse_scene
    from damp_engine.validity import validity_mask

    _, h, w = cube.shape
    with tempfile.TemporaryDirectory(prefix="damp-closed-form-") as folder:
        with RasterReader(write_cube(Path(folder) / "degraded.tif", cube), min_bands=3) as reader:
            analysis = analyse_scene(reader)
            data, valid = reader.read(0, 0, w, h)
    factor = np.float32(analysis.scaling.factor)
    scaled = np.divide(data, factor, out=data)
    ok, _ = validity_mask(scaled, valid, analysis.lost)
    np.copyto(scaled, np.float32(0.0), where=~ok)
    x = torch.from_numpy(scaled[None])
    if analysis.blocks is not None:
        x = interpolate_blocks(x, analysis.blocks, (0, 0))
    restored = restore_cube(None, analysis.basis, x, torch.from_numpy(ok[None]), torch.zeros(1, 6),
                            analysis.complement_share, analysis.keep_valid, analysis.blur).cube[0]
    return (restored.numpy() * factor).astype(np.float32)


def whole_cube_closed_form(cube: np.ndarray, sigmas: np.ndarray | None = None) -> np.ndarray:
    """DAMP's closed form with its basis, noise and blur width fitted on the whole cube at once
    rather than on `damp restore`'s sample windows: a classical method in its own right (it sees
    every pixel of the crop), kept so that the suite's bar is the higher of the two. Estimates its
    own noise (``sigmas`` is ignored)."""
    from damp_engine.coarse import detect_blocks, interpolate_blocks
    from damp_engine.restoration import restore_cube
    from damp_engine.scene_analysis import NOISE_FREE_SIGMA, scene_estimates
    from damp_engine.validity import validity_mask

    lost = (cube == 0).reshape(cube.shape[0], -1).all(axis=1)
    valid, _ = validity_mask(cube, np.ones(cube.shape, bool), lost)
    basis, blur = scene_estimates(cube[None], valid[None])
    x, ok = torch.from_numpy(cube[None]).float(), torch.from_numpy(valid[None])
    blocks = detect_blocks([(cube, valid, 0, 0)])
    if blocks is not None:
        x, blur = interpolate_blocks(x, blocks, (0, 0)), 0.0
    noise_free = float(np.nanmedian(basis.noise_sigma)) < NOISE_FREE_SIGMA
    keep = blocks is None and noise_free and not blur
    return restore_cube(None, basis, x, ok, torch.zeros(1, 6), 1.0 if noise_free else 0.0,
                        keep_valid=keep, blur=blur).cube[0].numpy()


def closed_form_task(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    return subspace_closed_form(degraded)


def whole_cube_task(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    return whole_cube_closed_form(degraded)


CLOSED_FORM = "subspace + wavelet (DAMP's closed form)"
WHOLE_CUBE = "subspace + wavelet (whole-cube basis)"


DENOISERS: dict[str, Denoiser] = {
    "FastHyDe": fasthyde_denoise,
    "BM4D": bm4d_denoise,
    "wavelet BayesShrink": wavelet_denoise,
    "TV": tv_denoise,
    CLOSED_FORM: subspace_closed_form,
    WHOLE_CUBE: whole_cube_closed_form,
}


# ----------------------------------------------------------------------------- noise tasks

def noise_levels(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """σ per band in data units: the true σ for i.i.d. Gaussian noise, else estimated per band."""
    if record.kind == "gaussian_noise":
        return np.full(degraded.shape[0], record.params["sigma"] / 255, dtype=np.float64)
    return np.array([estimate_sigma(band) for band in degraded], dtype=np.float64)


def anscombe(y: np.ndarray, scale: float) -> np.ndarray:
    """Anscombe transform of photon counts ``y · scale``: Poisson noise becomes Gaussian, σ ≈ 1."""
    return 2 * np.sqrt(np.maximum(y * scale, 0) + 3 / 8)


def inverse_anscombe(d: np.ndarray, scale: float) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Mäkitalo & Foi 2011), / scale.

    The algebraic inverse (d/2)² − 3/8 is biased at low counts; this one is not.
    """
    d = np.maximum(d, 1.0)
    counts = d ** 2 / 4 + np.sqrt(1.5) / (4 * d) - 11 / (8 * d ** 2) + 5 * np.sqrt(1.5) / (8 * d ** 3) - 1 / 8
    return (np.maximum(counts, 0) / scale).astype(np.float32)


def denoise_task(denoiser: Denoiser) -> Baseline:
    """Turn a Gaussian denoiser into a baseline for any noise task.

    Poisson data go through the Anscombe transform (peak-normalised so the denoiser sees data in
    [0, 1] with σ = 1/peak), are denoised, and come back by the unbiased inverse.
    """
    def run(degraded: np.ndarray, record: Degradation) -> np.ndarray:
        if record.kind != "poisson":
            return denoiser(degraded, noise_levels(degraded, record))
        scale = record.params["scale"]
        stabilised = anscombe(degraded, scale)
        peak = float(stabilised.max())
        sigmas = np.full(degraded.shape[0], 1 / peak)
        clean = denoiser((stabilised / peak).astype(np.float32), sigmas)
        return inverse_anscombe(clean.astype(np.float64) * peak, scale)

    return run


# ----------------------------------------------------------------------------- deblurring

def true_kernel(record: Degradation) -> np.ndarray:
    """The blur kernel that made the record (non-blind deconvolution uses it)."""
    if record.kind == "gaussian_blur":
        return gaussian_kernel(record.params["ksize"])
    return motion_kernel(record.params["size"], record.params["angle"])


def circular_blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Periodic convolution of a 2-D image with a centred odd kernel (FFT)."""
    psf = np.zeros_like(image, dtype=np.float64)
    kh, kw = kernel.shape
    psf[:kh, :kw] = kernel
    psf = np.roll(psf, (-(kh // 2), -(kw // 2)), axis=(0, 1))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.fft.fft2(psf)))


def edge_taper(image: np.ndarray, kernel: np.ndarray, width: int) -> np.ndarray:
    """Blend a padded image towards its periodic blur over a ``width``-pixel rim.

    The FFT-based Wiener filter assumes a periodic image; without this, the jump at the wrap-
    around is amplified near the kernel's spectral zeros (MATLAB's ``edgetaper`` idea).
    """
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(width) / width)
    rows, cols = np.ones(image.shape[0]), np.ones(image.shape[1])
    rows[:width], rows[-width:] = ramp, ramp[::-1]
    cols[:width], cols[-width:] = ramp, ramp[::-1]
    alpha = np.outer(rows, cols)
    return alpha * image + (1 - alpha) * circular_blur(image, kernel)


def wiener_deblur(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """Band-wise Wiener–Hunt deconvolution (``skimage.restoration.wiener``) with the true kernel.

    Each band is mirror-padded by twice the kernel size and edge-tapered, deconvolved with the
    Laplacian regulariser and the balance of :data:`WIENER_BALANCE`, and cropped back.
    """
    kernel = true_kernel(record)
    pad = 2 * kernel.shape[0]
    balance = WIENER_BALANCE[record.kind]
    out = [wiener(edge_taper(np.pad(band, pad, mode="reflect").astype(np.float64), kernel, pad),
                  kernel, balance, clip=False)[pad:-pad, pad:-pad] for band in degraded]
    return np.stack(out).astype(np.float32)


def richardson_lucy_deblur(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """Band-wise Richardson–Lucy (``skimage.restoration.richardson_lucy``), true kernel, 30 iterations.

    Each band is mirror-padded by twice the kernel size (the degradation blurs with mirror
    padding too) and cropped back.
    """
    kernel = true_kernel(record)
    pad = 2 * kernel.shape[0]
    out = [richardson_lucy(np.pad(np.maximum(band, 0), pad, mode="reflect"), kernel,
                           num_iter=RL_ITERATIONS, clip=False)[pad:-pad, pad:-pad] for band in degraded]
    return np.stack(out).astype(np.float32)


# ----------------------------------------------------------------------------- SR, inpainting, band loss

def bicubic_upsample(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """Bicubic interpolation of the low-resolution image back to the original grid.

    ``degrade`` replicates each low-resolution pixel over a factor × factor block starting at the
    top-left pixel, so one pixel per block is the low-resolution image. Upsampling it with
    half-pixel-centred bicubic (``align_corners=False``) puts each low-resolution sample at the
    centre of its block, where the antialiased downsampling took it from; the result is cropped
    to H × W.
    """
    f = record.params["factor"]
    _, h, w = degraded.shape
    low = torch.from_numpy(np.ascontiguousarray(degraded[:, ::f, ::f])).unsqueeze(0)
    with torch.no_grad():
        up = F.interpolate(low, scale_factor=f, mode="bicubic", align_corners=False)
    return up[0, :, :h, :w].numpy().astype(np.float32)


def missing_pixels(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """The true (H, W) mask of the pixels removed by an inpainting degradation.

    Replayed from the record: the mask depends only on the seed and the image size, so
    degrading a one-band image of ones with the same seed and parameters zeroes the same pixels.
    """
    ones = np.ones((1, *degraded.shape[1:]), dtype=np.float32)
    replay, _ = degrade(ones, record.kind, record.seed, **record.params)
    return replay[0] == 0


def biharmonic_inpaint(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """Biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``) with the true mask.

    All bands share the mask, so one sparse system is solved for all of them (about 30 s and
    1.6 GB for a 31 × 512 × 512 cube at 80 % missing).
    """
    mask = missing_pixels(degraded, record)
    image = np.ascontiguousarray(degraded.transpose(1, 2, 0))
    return inpaint_biharmonic(image, mask, channel_axis=-1).transpose(2, 0, 1).astype(np.float32)


def spectral_interpolation(degraded: np.ndarray, record: Degradation) -> np.ndarray:
    """Fill the lost bands by linear interpolation along the band index between kept neighbours.

    Lost bands before the first (after the last) kept band copy it. Linear interpolation is
    linear in the data, so it is one (C, C) matrix applied to every pixel's spectrum.
    """
    bands = degraded.shape[0]
    kept = np.setdiff1d(np.arange(bands), record.bands)
    matrix = np.zeros((bands, bands))
    for i, k in enumerate(kept):
        matrix[:, k] = np.interp(np.arange(bands), kept, np.eye(len(kept))[i])
    return np.einsum("bc,chw->bhw", matrix, degraded).astype(np.float32)


# ----------------------------------------------------------------------------- per task

def baselines_for(kind: str, bm4d: bool = False) -> dict[str, Baseline]:
    """The classical methods for a degradation kind, by display name (BM4D only if asked)."""
    if kind in NOISE_KINDS:
        names = [n for n in DENOISERS if bm4d or n != "BM4D"]
        prefix = "Anscombe + " if kind == "poisson" else ""
        return {prefix + n: denoise_task(DENOISERS[n]) for n in names}
    if kind in BLUR_KINDS:
        return {"Wiener (true kernel)": wiener_deblur, "Richardson-Lucy (true kernel)": richardson_lucy_deblur,
                CLOSED_FORM: closed_form_task, WHOLE_CUBE: whole_cube_task}
    table: dict[str, dict[str, Baseline]] = {
        "sr": {"bicubic": bicubic_upsample},
        "inpaint": {"biharmonic (true mask)": biharmonic_inpaint},
        "band_loss": {"spectral linear interpolation": spectral_interpolation},
    }
    return {**table[kind], CLOSED_FORM: closed_form_task, WHOLE_CUBE: whole_cube_task}
