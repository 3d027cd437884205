"""Severities in physical units: closed-form estimators of how strongly a cube is degraded.

Each estimator is a standard one from the image-processing literature, written in numpy for a
cube x (C, H, W) scaled to about [0, 1] (as the degradation prompt expects), together with a
pixel mask of what was actually measured. They answer the questions a user asks once the
reading has named a degradation: how much noise, how wide a blur, how coarse the pixels, which
bands are gone. ``damp_engine.reading`` turns them into raster units and into the extra
features of the classifier.

| estimator              | method                                                                      |
|------------------------|-----------------------------------------------------------------------------|
| missing pixels         | pixels with no valid band, or whose whole spectrum is exactly 0             |
| lost bands             | bands that are constant over every measured pixel (zeroed or stuck)         |
| dead lines             | whole columns (or rows) exactly 0 in one band while the scene has signal there |
| noise σ per band       | the finest Haar diagonal sub-band HH₁ (Donoho & Johnstone 1994), which holds |
|                        | mostly noise, less what the neighbouring bands explain (HySime's regression, |
|                        | in the wavelet domain); σ from a robust (90 %-trimmed) second moment        |
| signal dependence      | the same σ in intensity bins: the exponent γ of σ² ∝ μ^γ (0: additive        |
|                        | Gaussian, 1: photon / Poisson-like) and the line σ² = gain·μ + floor²       |
| blur width             | lag-one autocorrelation ρ of first differences along 4 directions: a        |
|                        | Gaussian PSF of width s turns each edge into a Gaussian of std s, whose      |
|                        | derivative autocorrelation is ρ = exp(−1/(4 s²)), so s = 1 / (2 √(−ln ρ))    |
| coarse-pixel factor    | block replication: for a factor f, the neighbour differences vanish inside  |
|                        | f × f blocks (at some phase) and not across their borders                   |
| stripes                | one-way analysis of variance of each band's spectral residual (what its     |
|                        | neighbouring bands do not explain) with columns (rows) as groups: F =       |
|                        | variance between line means (high-passed) / variance expected from within   |
| impulse noise          | samples beyond every one of their 8 neighbours by more than 4 σ + 0.1, σ the |
|                        | neighbours' own scatter, reaching the band's extremes                       |

The estimators live by what they look for: ``severity_gaps`` (missing pixels, lost bands, dead
lines), ``severity_noise`` (σ and its signal dependence), ``severity_blur`` (blur width,
coarse-pixel factor) and ``severity_lines`` (stripes, impulses); :func:`measure` runs them all on
one cube, in the order in which each leaves out what the earlier ones found. Everything is
deterministic and uses every pixel (no random sampling).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .severity_blur import derivative_correlation, replication
from .severity_gaps import dead_lines, lost_bands, missing_pixels
from .severity_lines import impulses, stripe_profiles
from .severity_noise import noise_estimates


@dataclass(frozen=True)
class Measures:
    """What the estimators measured on one cube (C, H, W); per-band arrays have length C.

    ``missing``: (H, W) pixels with no data; ``lost``: bands constant everywhere; ``sigma``:
    noise σ per band (NaN for lost bands); ``sigma_bright``: the σ of its brightest eighth of
    blocks; ``gamma``: signal-dependence exponent per band (NaN
    where the band's intensities span too little to tell); ``gain``/``floor``: σ² = gain·μ +
    floor² per band; ``rho``: derivative autocorrelation per direction (x, y, diagonal,
    anti-diagonal), median over bands; ``replication``: for each factor in ``severity_blur.FACTORS``, the
    ratio of within-block to across-block differences (1: no replication, 0: exact);
    ``dead_cols``/``dead_rows``: per band, the share of columns/rows that are dead;
    ``stripe_col``/``stripe_row``: per band, the stripe F ratio of the columns/rows;
    ``impulse``: per band, the share of samples that are impulses.
    """

    missing: np.ndarray
    lost: np.ndarray
    sigma: np.ndarray
    sigma_bright: np.ndarray
    gamma: np.ndarray
    gamma_weight: np.ndarray
    gain: np.ndarray
    floor: np.ndarray
    rho: np.ndarray
    replication: dict[int, float]
    dead_cols: np.ndarray
    dead_rows: np.ndarray
    stripe_col: np.ndarray
    stripe_row: np.ndarray
    impulse: np.ndarray


def measure(x: np.ndarray, valid: np.ndarray | None = None) -> Measures:
    """Run every estimator on the cube ``x`` (C, H, W), scaled to about [0, 1].

    ``valid`` (C, H, W) marks the samples that hold data (nodata and NaN are False); invalid
    samples may hold anything (e.g. a fill value) and are never measured.
    """
    x = np.asarray(x, dtype=np.float32)
    valid = np.isfinite(x) if valid is None else (np.asarray(valid, bool) & np.isfinite(x))
    x = np.where(valid, x, np.float32(0.0))
    missing = missing_pixels(x, valid)
    lost = lost_bands(x, valid, missing)
    dead_cols, dead_rows = dead_lines(x, valid, missing, lost)
    bad = ~valid | missing[None]  # (C, H, W): samples no estimator measures
    spikes, share = impulses(x, bad, lost)
    dead = dead_cols[:, None, :] | dead_rows[:, :, None]
    sigma, bright, gamma, weight, gain, floor = noise_estimates(x, bad | spikes | dead, lost)  # neither is noise
    stripe_col, stripe_row = stripe_profiles(x, bad | dead, lost)
    return Measures(
        missing=missing, lost=lost, sigma=sigma, sigma_bright=bright, gamma=gamma, gamma_weight=weight, gain=gain,
        floor=floor, rho=derivative_correlation(x, bad | dead, lost), replication=replication(x, missing, lost),
        dead_cols=dead_cols.mean(axis=1), dead_rows=dead_rows.mean(axis=1), stripe_col=stripe_col,
        stripe_row=stripe_row, impulse=share,
    )
