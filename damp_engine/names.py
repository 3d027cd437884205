"""The names the engine shows to users: degradation-prompt metrics, degradation kinds and the
families the reading of a degradation tells apart.

Kept free of torch so that QGIS can list algorithms and build dialogs without loading it.
"""
from __future__ import annotations

METRIC_NAMES: tuple[str, ...] = ("hfer", "stu", "scm", "scs", "gstd", "scc")

METRIC_TITLES: dict[str, str] = {
    "hfer": "High-frequency energy ratio",
    "stu": "Spatial texture uniformity",
    "scm": "Spectral curvature mean",
    "scs": "Spectral curvature std",
    "gstd": "Gradient std",
    "scc": "Spatial correlation coefficient",
}

METRIC_MEANINGS: dict[str, str] = {
    "hfer": "Share of each band's spatial energy at fine scales (finer than 6 pixels per cycle); "
    "noise and stripes raise it, blur lowers it.",
    "stu": "How evenly fine texture is spread over the image, from 0 (concentrated in a few "
    "places) to 1 (the same everywhere, as with noise over the whole scene).",
    "scm": "Average roughness of the pixel spectra (mean absolute second difference between "
    "neighbouring bands); noise, lost bands and spikes raise it.",
    "scs": "How much that spectral roughness varies from pixel to pixel; lost bands and impulse "
    "noise, whose damage differs from pixel to pixel, raise it most.",
    "gstd": "Spread of the edge strength (Sobel gradient magnitude) in each band; sharp edges and "
    "noise raise it, blur lowers it.",
    "scc": "Correlation of each band with itself shifted by one pixel, from 1 (smooth or blurred) "
    "towards 0 (noisy, striped or with gaps).",
}

KINDS: tuple[str, ...] = ("gaussian_noise", "noniid_noise", "poisson", "gaussian_blur", "motion_blur",
                          "sr", "inpaint", "band_loss", "stripes", "deadlines", "impulse", "complex")
TRAIN_KINDS: tuple[str, ...] = ("gaussian_noise", "gaussian_blur", "sr", "inpaint", "band_loss",
                                "complex")
ZERO_SHOT_KINDS: tuple[str, ...] = ("motion_blur", "poisson")
SPARSE_EXTRAS: tuple[str, ...] = ("stripes", "deadlines", "impulse")

PARAMETERS: dict[str, dict[str, object]] = {
    "gaussian_noise": {"sigma": 50.0},
    "noniid_noise": {"sigmas": [10.0, 30.0, 50.0, 70.0]},
    "poisson": {"scale": 30.0},
    "gaussian_blur": {"ksize": 9},
    "motion_blur": {"size": 15, "angle": 45.0},
    "sr": {"factor": 2},
    "inpaint": {"fraction": 0.7},
    "band_loss": {"fraction": 0.1},
    "stripes": {"band_fraction": 1 / 3, "amplitude": 0.1},
    "deadlines": {"band_fraction": 1 / 3},
    "impulse": {"band_fraction": 1 / 3, "fraction": 0.1},
    "complex": {"sigmas": [10.0, 30.0, 50.0, 70.0], "extra": "random", "band_fraction": 1 / 3},
}

# The families of degradation that the reading tells apart (``damp_engine.reading``); "clean" is
# the absence of all the others.
FAMILIES: tuple[str, ...] = ("clean", "gaussian_noise", "signal_dependent_noise", "blur", "coarse_resolution",
                             "missing_pixels", "lost_bands", "stripes", "dead_lines", "impulse_noise")
FAMILY_TITLES: dict[str, str] = {
    "clean": "clean", "gaussian_noise": "Gaussian noise", "signal_dependent_noise": "signal-dependent noise",
    "blur": "blur", "coarse_resolution": "coarse resolution", "missing_pixels": "missing pixels",
    "lost_bands": "lost bands", "stripes": "stripes", "dead_lines": "dead lines", "impulse_noise": "impulse noise",
}
