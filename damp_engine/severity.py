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

Everything here is deterministic and uses every pixel (no random sampling).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZERO = 1e-7               # |value| at or below this is an exact zero (scaled data, about [0, 1])
CONSTANT = 1e-6           # a band whose values span at most this is constant (lost)
TRIM = 0.9                # the noise variance is the mean square of the smallest 90 % of coefficients ...
TRIMMED = 0.62302         # ... over E[z² | |z| < 1.6449] for z ~ N(0, 1)
SIGNAL = 0.01             # a column (row) mean over bands above this has signal (scaled units)
STARVED = 0.2             # share of zero samples around a zero spectrum from which it is photon-starved
NOISE_BINS = 8            # intensity bins of the signal-dependence fit
IMPULSE_SIGMAS = 4.0      # an impulse exceeds its 8 neighbours by 4 σ of their scatter ...
EXTREME = 99.0            # ... and reaches the band's 99th (1st) percentile
SATURATED = 0.5           # ... and, if high, half the raster's scale (a hot sample saturates)
SCATTER_TO_SIGMA = 1.0 / 0.5971  # E[std of the 6 middle of 8 N(0, 1) samples] = 0.5971 (simulated)
IMPULSE_MARGIN = 0.1      # ... plus this much (scaled units; a photon-counting sample among zeros is less)
STRIPE_WINDOW = 7         # running median of the line profiles
NEIGHBOURS = 4            # spectral neighbours that explain a band's texture (noise and stripes)
MIN_BLOCKS = 64           # fewest usable coefficients for a noise estimate
FACTORS = (2, 3, 4, 5, 6, 8)  # coarse-pixel factors tested
REPLICATED = 0.05         # differences inside blocks below this share of those across: replicated
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))  # 2.3548


@dataclass(frozen=True)
class Measures:
    """What the estimators measured on one cube (C, H, W); per-band arrays have length C.

    ``missing``: (H, W) pixels with no data; ``lost``: bands constant everywhere; ``sigma``:
    noise σ per band (NaN for lost bands); ``sigma_bright``: the σ of its brightest eighth of
    blocks; ``gamma``: signal-dependence exponent per band (NaN
    where the band's intensities span too little to tell); ``gain``/``floor``: σ² = gain·μ +
    floor² per band; ``rho``: derivative autocorrelation per direction (x, y, diagonal,
    anti-diagonal), median over bands; ``replication``: for each factor in ``FACTORS``, the
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
        dead_cols=dead_cols.mean(axis=1), dead_rows=dead_rows.mean(axis=1), stripe_col=stripe_col, stripe_row=stripe_row,
        impulse=share,
    )


# ----------------------------------------------------------------------------- what is missing

def missing_pixels(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W): pixels with no valid band, or whose valid bands are all exactly 0 amid signal.

    A spectrum of zeros is no measurement (every real surface reflects something in some
    band): inpainting masks, dropped packets and fill values look like this. A photon-counting
    sensor in the dark, though, records zero in every band now and then, and then records many
    zeros around it too; so a zero spectrum counts as missing unless, among the pixels with data
    around it (5 × 5), more than ``STARVED`` of the samples are exactly 0.
    """
    holds = valid & (np.abs(x) > ZERO)
    none = ~valid.any(axis=0)
    zero = ~holds.any(axis=0) & ~none
    if not zero.any():
        return none
    has = ~(zero | none)
    zeros = (valid & ~holds).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)   # share of zero samples
    around, count = _box_sum(np.where(has, zeros, 0.0), 2), _box_sum(has.astype(np.float64), 2)
    starved = (count > 0) & (around > STARVED * count)
    return none | (zero & ~starved)


def _box_sum(a: np.ndarray, r: int) -> np.ndarray:
    """Sum of a 2-D array over (2r + 1)² boxes (zero outside), same shape."""
    padded = np.pad(a, r)
    c = padded.cumsum(axis=0).cumsum(axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    h, w = a.shape
    k = 2 * r + 1
    return c[k:k + h, k:k + w] - c[0:h, k:k + w] - c[k:k + h, 0:w] + c[0:h, 0:w]


def lost_bands(x: np.ndarray, valid: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """(C,): bands constant over every measured pixel (zeroed, stuck), or with no valid sample."""
    keep = valid & ~missing[None]
    high = np.where(keep, x, -np.inf).max(axis=(1, 2))
    low = np.where(keep, x, np.inf).min(axis=(1, 2))
    return ~keep.any(axis=(1, 2)) | (high - low <= CONSTANT)


def dead_lines(x: np.ndarray, valid: np.ndarray, missing: np.ndarray,
               lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which columns (C, W) and rows (C, H) of each band are dead.

    A line (column or row) is dead in band b when every measured pixel of it is exactly 0 in b
    while the scene has signal there (its mean over all bands exceeds ``SIGNAL``) and the band
    has few zeros elsewhere (under ``STARVED``; in a photon-starved band, zeros everywhere leave
    whole lines at zero by chance): a detector element that recorded nothing. Lost bands have
    no dead lines (they are lost whole).
    """
    measured = valid & ~missing[None]
    zero = (np.abs(x) <= ZERO) | ~measured
    signal = np.where(measured, x, 0.0).sum(axis=0)
    count = np.maximum(measured.sum(axis=0), 1)
    exact = measured & (np.abs(x) <= ZERO)
    lines = []
    for axis in (1, 2):  # columns: all rows zero (reduce axis 1); rows: reduce axis 2
        pixels = (~missing).sum(axis=axis - 1)  # measured pixels per line
        line_signal = signal.sum(axis=axis - 1) / np.maximum(count.sum(axis=axis - 1), 1)
        dead = zero.all(axis=axis) & (pixels >= 4)[None] & (line_signal > SIGNAL)[None]
        dead[lost] = False
        lines.append(dead)
    cols, rows = lines
    in_dead = cols[:, None, :] | rows[:, :, None]
    elsewhere = (exact & ~in_dead).sum(axis=(1, 2)) / np.maximum((measured & ~in_dead).sum(axis=(1, 2)), 1)
    starved = elsewhere > STARVED
    cols[starved], rows[starved] = False, False
    return cols, rows


# ----------------------------------------------------------------------------- noise

def haar_diagonal(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The finest Haar diagonal coefficients HH₁ and the 2 × 2 block means of each band.

    HH₁ = (x₀₀ − x₀₁ − x₁₀ + x₁₁) / 2 over non-overlapping 2 × 2 blocks: (C, H//2, W//2) each.
    The transform is orthonormal, so i.i.d. noise of std σ gives HH₁ of std σ.
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    a, b = x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]
    c, d = x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]
    return (a - b - c + d) / 2.0, (a + b + c + d) / 4.0


def _any_in_blocks(mask: np.ndarray) -> np.ndarray:
    """(C, H//2, W//2): 2 × 2 blocks holding any True sample of ``mask``."""
    h, w = mask.shape[-2] // 2 * 2, mask.shape[-1] // 2 * 2
    return (mask[..., 0:h:2, 0:w:2] | mask[..., 0:h:2, 1:w:2] | mask[..., 1:h:2, 0:w:2]
            | mask[..., 1:h:2, 1:w:2])


def spectral_neighbours(bands: int, count: int = NEIGHBOURS) -> np.ndarray:
    """(bands, k): for each band the k nearest other bands along the spectrum (k = min(count, bands − 1)).

    Band b takes the k + 1 consecutive bands around it (shifted inwards at the ends), less itself.
    """
    k = min(count, bands - 1)
    if k <= 0:
        return np.zeros((bands, 0), dtype=int)
    b = np.arange(bands)
    first = np.clip(b - k // 2, 0, bands - 1 - k)
    window = first[:, None] + np.arange(k + 1)[None]
    return window[window != b[:, None]].reshape(bands, k)


def noise_coefficients(x: np.ndarray, bad: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise-only coefficients of each band: (residual, block means, usable) (C, N), β (C, k), neighbours (C, k).

    The finest Haar diagonal sub-band HH₁ keeps noise and removes the smooth scene, but fine
    texture leaks into it. That texture is shared by neighbouring bands while noise is not, so
    each band's HH₁ is regressed (least squares) on the HH₁ of its ``NEIGHBOURS`` nearest bands
    and the residual kept, as HySime (Bioucas-Dias & Nascimento 2008) does on the raw bands.
    Blocks with a sample in ``bad`` (gaps, dead lines, spikes) in the band or a neighbour are
    unusable. Where fewer than ``MIN_BLOCKS`` blocks are usable (dense gaps), horizontal pair
    differences (x₁ − x₀) / √2 stand in for HH₁.

    The residual of band b has variance σ_b² + Σ_k β_k² σ_k² (the neighbours' noise leaks in
    through the regression weights β); :func:`noise_sigma` removes that share.
    """
    bands = x.shape[0]
    skip = bad
    hh, mean = haar_diagonal(x)
    block_skip = _any_in_blocks(skip)
    if (~block_skip).reshape(bands, -1).sum(axis=1).min() < MIN_BLOCKS:
        hh = (x[..., 1:] - x[..., :-1]) / np.sqrt(2.0)
        mean = (x[..., 1:] + x[..., :-1]) / 2.0
        block_skip = skip[..., 1:] | skip[..., :-1]
    hh, mean, ok = hh.reshape(bands, -1), mean.reshape(bands, -1), ~block_skip.reshape(bands, -1)
    if bands < 2:
        return hh, mean, ok, np.zeros((bands, 0)), np.zeros((bands, 0), dtype=int)
    nb = spectral_neighbours(bands)
    usable = ok & ok[nb].all(axis=1)
    target = hh * usable
    design = hh[nb] * usable[:, None, :]                               # (C, k, N)
    gram = (design @ design.transpose(0, 2, 1)).astype(np.float64)     # (C, k, k)
    rhs = (design @ target[..., None]).astype(np.float64)               # (C, k, 1)
    ridge = 1e-9 * (np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-30) * np.eye(nb.shape[1])
    beta = np.linalg.solve(gram + ridge, rhs)[..., 0]                   # (C, k)
    residual = target - (beta[:, None, :].astype(hh.dtype) @ design)[:, 0, :]
    return residual, mean, usable, beta, nb


def _linear_fit(t: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise weighted least-squares line y ≈ slope·t + intercept: (slope, intercept), NaN if degenerate."""
    sw = w.sum(axis=1)
    tm = (w * t).sum(axis=1) / np.maximum(sw, 1e-30)
    ym = (w * y).sum(axis=1) / np.maximum(sw, 1e-30)
    stt = (w * (t - tm[:, None]) ** 2).sum(axis=1)
    sty = (w * (t - tm[:, None]) * (y - ym[:, None])).sum(axis=1)
    slope = np.where(stt > 0, sty / np.where(stt > 0, stt, 1.0), np.nan)
    return slope, ym - slope * tm


def noise_sigma(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Noise σ per band, (C,) (NaN for lost bands and bands with too few usable blocks).

    The finest Haar diagonal sub-band (Donoho & Johnstone's estimator), spectrally decorrelated
    (:func:`noise_coefficients`), with a robust second moment; see :func:`noise_estimates`.
    """
    return noise_estimates(x, bad, lost)[0]


def noise_estimates(x: np.ndarray, bad: np.ndarray, lost: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """σ per band (:func:`noise_sigma`) and how it grows with intensity: (σ, σ of the brightest
    eighth, γ, weight, gain, floor), each (C,), NaN (weight 0) where it cannot be told.

    σ² is a robust second moment of the band's noise coefficients: the mean of r² over the 90 %
    of them smallest in size, divided by what that trimmed mean is for a unit Gaussian
    (``TRIMMED``); unlike the MAD it stays right for photon noise at a few counts, whose
    coefficients are mostly exactly 0. The neighbours' noise leaked in by the regression is
    then taken out (three fixed-point passes of σ_b² = total_b − Σ_k β_k² σ_k²).

    For the signal dependence the usable coefficients of a band are split into ``NOISE_BINS``
    bins of equal count by their block mean μ, σ² is measured in each the same way (times the
    band's leak correction); γ is the least-squares slope of log σ² against log μ (0 for
    additive noise, 1 for photon noise, where σ² = μ / photons per unit), weighted by the spread
    of log μ over the bins (a band of nearly one intensity tells little); gain and floor fit
    σ² = gain·μ + floor² by least squares, the Poisson-Gaussian model (Foi et al. 2008).
    """
    bands = x.shape[0]
    sigma, bright, gamma, weight = (np.full(bands, np.nan) for _ in range(4))
    weight[:] = 0.0
    gain, floor = np.full(bands, np.nan), np.full(bands, np.nan)
    keep = np.flatnonzero(~lost)
    if keep.size == 0:
        return sigma, bright, gamma, weight, gain, floor
    residual, mean, usable, beta, nb = noise_coefficients(x[keep], bad[keep])
    size = np.abs(residual).astype(np.float64)
    count = usable.sum(axis=1)
    ordered = np.sort(np.where(usable, size, np.inf), axis=1)
    ordered[~np.isfinite(ordered)] = 0.0
    total = np.where(count >= MIN_BLOCKS, _trimmed_variance(ordered, np.zeros_like(count), count), np.nan)
    var = total.copy()
    if nb.size:
        for _ in range(3):
            leak = (beta ** 2 * np.nan_to_num(var)[nb]).sum(axis=1)
            var = np.maximum(total - leak, 0.25 * total)
    sigma[keep] = np.sqrt(var)
    correction = np.where(total > 0, var / np.where(total > 0, total, 1.0), np.nan)

    # NOISE_BINS bins of equal count per band, by block mean: the median μ and the σ² of each
    order = np.argsort(np.where(usable, mean, np.inf), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1)
    bin_of = np.where(usable, rank * NOISE_BINS // np.maximum(count, 1)[:, None], NOISE_BINS)
    per_bin = np.stack([(bin_of == k).sum(axis=1) for k in range(NOISE_BINS)], axis=1)  # (C, bins)
    start = np.cumsum(per_bin, axis=1) - per_bin
    middle = np.minimum(start + per_bin // 2, order.shape[1] - 1)
    level = np.take_along_axis(np.take_along_axis(mean, order, axis=1), middle, axis=1).astype(np.float64)
    unit = size.max(initial=0.0) + 1e-30  # |r| / unit < 1, so bin + |r| / unit sorts by bin, then |r|
    keyed = np.sort(bin_of + np.where(usable, size / unit, 0.0) * 0.999, axis=1)
    within = np.where(keyed < NOISE_BINS, (keyed - np.floor(keyed)) / 0.999 * unit, 0.0)
    var_bins = np.stack([_trimmed_variance(within, start[:, k], per_bin[:, k]) for k in range(NOISE_BINS)], axis=1)
    var_bins *= correction[:, None]
    enough = (per_bin >= 2).all(axis=1) & np.isfinite(correction)
    bright[keep] = np.where(enough, np.sqrt(var_bins[:, -1]), sigma[keep])

    slope, intercept = _linear_fit(level, var_bins, np.ones_like(level))
    ok = enough & np.isfinite(slope)
    gain[keep[ok]], floor[keep[ok]] = slope[ok], np.sqrt(np.maximum(intercept[ok], 0.0))
    positive = (level > 1e-3) & (var_bins > 0) & enough[:, None]
    log_level = np.log(np.where(positive, level, 1.0))
    log_var = np.log(np.where(positive, var_bins, 1.0))
    span = np.where(positive, log_level, -np.inf).max(axis=1) - np.where(positive, log_level, np.inf).min(axis=1)
    slope, _ = _linear_fit(log_level, log_var, positive.astype(float))
    ok = (positive.sum(axis=1) >= 3) & (span > 0.1) & np.isfinite(slope)
    gamma[keep[ok]], weight[keep[ok]] = slope[ok], span[ok]
    return sigma, bright, gamma, weight, gain, floor


def _trimmed_variance(ordered: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per row, the Gaussian-equivalent variance of the ``count`` values from ``start`` of a row
    sorted by size within each group: mean of the squares of the smallest 90 %, / ``TRIMMED``."""
    squares = np.cumsum(ordered ** 2, axis=1)
    squares = np.concatenate([np.zeros((ordered.shape[0], 1)), squares], axis=1)
    kept = np.maximum((TRIM * count).astype(int), 1)
    end = np.minimum(start + kept, ordered.shape[1])
    rows = np.arange(ordered.shape[0])
    total = squares[rows, end] - squares[rows, np.minimum(start, ordered.shape[1])]
    return np.where(count > 0, total / kept / TRIMMED, np.nan)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The weighted median of the finite ``values`` (NaN when none has weight)."""
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return float("nan")
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    cumulative = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


# ----------------------------------------------------------------------------- blur and pixel size

DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # x, y, diagonal, anti-diagonal (row, column steps)


def _shift(a: np.ndarray, dy: int, dx: int, k: int) -> np.ndarray:
    """a[..., y + k·dy, x + k·dx] over the region where offsets 0..2 (k) all stay inside."""
    h, w = a.shape[-2:]
    y0 = k * dy if dy >= 0 else 0
    x0 = k * dx if dx >= 0 else -2 * dx + k * dx
    return a[..., y0:h - 2 * abs(dy) + y0, x0:w - 2 * abs(dx) + x0]


def derivative_correlation(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Lag-one autocorrelation ρ of the first differences along x, y and both diagonals, (4,).

    For each direction, d_k = x(p + k·step) − x(p + (k−1)·step); ρ = Σ d₁ d₂ / √(Σ d₁² Σ d₂²)
    over the samples whose three pixels are all measured, per band; the median over bands is
    returned. White noise gives −0.5, a sharp step about 0, an edge blurred by a Gaussian of
    std s gives exp(−L²/(4 s²)) with L the step length (1, or √2 along a diagonal).
    """
    keep = np.flatnonzero(~lost)
    if keep.size == 0:
        return np.full(len(DIRECTIONS), np.nan)
    xs, good = x[keep], ~bad[keep]
    rho = []
    for dy, dx in DIRECTIONS:
        p0, p1, p2 = (_shift(xs, dy, dx, k) for k in range(3))
        ok = _shift(good, dy, dx, 0) & _shift(good, dy, dx, 1) & _shift(good, dy, dx, 2)
        d1, d2 = (p1 - p0) * ok, (p2 - p1) * ok
        num = np.einsum("chw,chw->c", d1, d2, dtype=np.float64)
        den = np.sqrt(np.einsum("chw,chw->c", d1, d1, dtype=np.float64)
                      * np.einsum("chw,chw->c", d2, d2, dtype=np.float64))
        per_band = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        rho.append(float(np.nanmedian(per_band)) if np.isfinite(per_band).any() else np.nan)
    return np.asarray(rho)


def blur_sigma(rho: np.ndarray) -> np.ndarray:
    """The Gaussian PSF std s (pixels) for each direction's ρ: s = L / (2 √(−ln ρ)).

    L is the step length of the direction (1 along x and y, √2 along the diagonals). 0 where
    ρ ≤ 0 (no sign of blur); ρ is clipped below 0.999 so that s stays finite (≤ 16 L).
    """
    rho = np.asarray(rho, dtype=np.float64)
    step = np.array([np.hypot(dy, dx) for dy, dx in DIRECTIONS])
    clipped = np.clip(np.nan_to_num(rho, nan=0.0), 1e-12, 0.999)
    return np.where(np.nan_to_num(rho, nan=0.0) > 0, step / (2.0 * np.sqrt(-np.log(clipped))), 0.0)


def replication(x: np.ndarray, missing: np.ndarray, lost: np.ndarray) -> dict[int, float]:
    """For each factor f, how far the cube is from f × f block replication (0: exact, ≈1: none).

    With D_j the mean |difference| between columns j and j+1 (over bands and rows), a cube
    replicated by f at phase o has D_j = 0 wherever (j + 1 − o) is not a multiple of f. The
    ratio mean(D inside blocks) / mean(D across block borders), minimised over the phase, is
    computed for columns and for rows; the larger of the two is returned (both must hold).
    """
    keep = np.flatnonzero(~lost)
    out = {}
    if keep.size == 0:
        return {f: 1.0 for f in FACTORS}
    xs = x[keep]
    profiles = []
    for axis in (2, 1):
        d = np.abs(np.diff(xs, axis=axis))
        ok = ~(missing[:, 1:] | missing[:, :-1]) if axis == 2 else ~(missing[1:] | missing[:-1])
        d = np.where(ok[None], d, 0.0)
        counts = np.maximum(ok.sum(axis=0 if axis == 2 else 1), 1) * xs.shape[0]
        profiles.append(d.sum(axis=(0, 1 if axis == 2 else 2)) / counts)
    for f in FACTORS:
        ratios = []
        for profile in profiles:
            if profile.size < 2 * f:
                ratios.append(1.0)
                continue
            j = np.arange(profile.size)
            best = np.inf
            for phase in range(f):
                border = (j + 1 - phase) % f == 0
                across = profile[border].mean()
                inside = profile[~border].mean()
                best = min(best, inside / across if across > 0 else (0.0 if inside == 0 else np.inf))
            ratios.append(float(min(best, 1.0)))
        out[f] = max(ratios)
    return out


def coarse_factor(ratios: dict[int, float]) -> int:
    """The largest factor whose replication ratio is below ``REPLICATED`` (1: not coarse)."""
    found = [f for f, r in ratios.items() if r < REPLICATED]
    return max(found) if found else 1


# ----------------------------------------------------------------------------- stripes and impulses

def _running_median(profiles: np.ndarray, window: int) -> np.ndarray:
    """Running median along the last axis with reflected ends (same shape)."""
    half = window // 2
    if profiles.shape[-1] <= half:
        return np.broadcast_to(np.median(profiles, axis=-1, keepdims=True), profiles.shape).copy()
    padded = np.pad(profiles, [(0, 0)] * (profiles.ndim - 1) + [(half, half)], mode="reflect")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window, axis=-1), axis=-1)


def stripe_profiles(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per band, the stripe F ratio of its columns and of its rows, (C,) each (NaN for lost bands).

    A stripe is an offset added to a whole column (or row) of one band. The scene's own
    structure, shared by neighbouring bands, is first removed: each band is regressed (least
    squares, with a constant) on its ``NEIGHBOURS`` nearest bands and the residual kept. Then a
    one-way analysis of variance with the lines as groups: F = the mean square of the line
    means of the residual (high-passed by a 7-line running median, so slow shading does not
    count) over the variance a line mean would have from the scatter within lines, the latter
    widened by (1 + ρ)/(1 − ρ) for the residual's lag-one correlation ρ along the lines (blur
    along a line makes its samples less independent). Noise gives F ≈ 1, stripes F ≫ 1. Samples
    in ``bad`` (gaps, dead lines) are left out; lines with too few samples left are
    interpolated and not counted.
    """
    bands = x.shape[0]
    col, row = np.full(bands, np.nan), np.full(bands, np.nan)
    keep = np.flatnonzero(~lost)
    if keep.size < 2:
        return col, row
    xs = x[keep]
    good = ~bad[keep]
    c, h, w = xs.shape
    nb = spectral_neighbours(c)
    flat, ok = xs.reshape(c, -1), good.reshape(c, -1)
    use = ok & ok[nb].all(axis=1)
    design = np.concatenate([flat[nb], np.ones((c, 1, flat.shape[1]), flat.dtype)], axis=1) * use[:, None, :]
    target = flat * use
    gram = (design @ design.transpose(0, 2, 1)).astype(np.float64)
    rhs = (design @ target[..., None]).astype(np.float64)
    ridge = 1e-9 * (np.trace(gram, axis1=1, axis2=2)[:, None, None] + 1e-30) * np.eye(gram.shape[1])
    beta = np.linalg.solve(gram + ridge, rhs)[..., 0]
    residual = ((target - (beta[:, None, :].astype(flat.dtype) @ design)[:, 0, :]) * use).reshape(c, h, w)
    use = use.reshape(c, h, w)
    for axis, out in ((1, col), (2, row)):
        n = use.sum(axis=axis).astype(np.float64)                        # (C, lines)
        line_ok = n >= max(4, 0.25 * xs.shape[axis])
        lines = line_ok.sum(axis=1)
        if lines.max(initial=0) < STRIPE_WINDOW:
            continue
        means = residual.sum(axis=axis, dtype=np.float64) / np.maximum(n, 1)
        squares = (residual.astype(np.float64) ** 2).sum(axis=axis) / np.maximum(n, 1)
        spread = np.maximum(squares - means ** 2, 0.0) / np.maximum(n - 1, 1)  # variance of a line mean
        spread *= _correlation_inflation(residual, use, along=3 - axis)[:, None]
        positions = np.arange(means.shape[1])
        profiles = np.array([np.interp(positions, positions[o], m[o]) if o.any() else m
                             for m, o in zip(means, line_ok)])
        high = np.where(line_ok, profiles - _running_median(profiles, STRIPE_WINDOW), 0.0)
        between = (high ** 2).sum(axis=1) / np.maximum(lines, 1)
        within = np.where(line_ok, spread, 0.0).sum(axis=1) / np.maximum(lines, 1)
        ratio = between / np.maximum(within, 1e-20)
        out[keep] = np.where((lines >= STRIPE_WINDOW) & (within > 0), ratio, np.nan)
    return col, row


def _correlation_inflation(residual: np.ndarray, use: np.ndarray, along: int) -> np.ndarray:
    """Per band, (1 + ρ)/(1 − ρ) for the lag-one correlation ρ ∈ [0, 0.98] of ``residual`` along
    axis ``along`` (1: rows, down a column; 2: columns, along a row): how much more a line mean
    varies than for independent samples."""
    if along == 1:
        a, b, ok = residual[:, :-1], residual[:, 1:], use[:, :-1] & use[:, 1:]
    else:
        a, b, ok = residual[..., :-1], residual[..., 1:], use[..., :-1] & use[..., 1:]
    num = np.einsum("chw,chw->c", a * ok, b, dtype=np.float64)
    den = np.sqrt(np.einsum("chw,chw->c", a * ok, a, dtype=np.float64) * np.einsum("chw,chw->c", b * ok, b, dtype=np.float64))
    rho = np.clip(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0), 0.0, 0.98)
    return (1 + rho) / (1 - rho)


def impulses(x: np.ndarray, bad: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isolated spikes such as salt-and-pepper or hot/dead detector samples: (mask (C, H, W), share (C,)).

    A spike lies above all 8 neighbours (or below all of them) by more than 4 σ + 0.1, σ the
    local scatter of the neighbours (the std of the 6 middle ones, rescaled to a Gaussian σ: the
    noise and texture there, so that noise growing with the signal does not pass for spikes;
    unlike their MAD it is not 0 for photon counts of a few levels), and reaches the
    band's extremes as a saturated (hot) or dead detector sample does: a high one at least the
    band's 99th percentile and half the raster's scale (``SATURATED``), a low one at most the
    band's 1st percentile, so that the odd photon among dark neighbours does not pass for one
    either. Neighbours that are gaps do not count; a sample needs at least 5 measured
    neighbours. The share is per band, over the samples tested.
    """
    mask = np.zeros(x.shape, bool)
    share = np.zeros(x.shape[0])
    keep = np.flatnonzero(~lost)
    if min(x.shape[-2:]) < 3 or keep.size == 0:
        return mask, share
    v, g = x[keep], ~bad[keep]
    h, w = v.shape[-2:]
    windows = [(slice(None), slice(1 + dy, h - 1 + dy), slice(1 + dx, w - 1 + dx))
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    around = np.stack([v[window] for window in windows], axis=-1)        # (C, h-2, w-2, 8)
    seen = np.stack([g[window] for window in windows], axis=-1)
    high = np.where(seen, around, -np.inf).max(axis=-1)                 # gaps never win a max or a min
    low = np.where(seen, around, np.inf).min(axis=-1)
    middle = np.sort(around, axis=-1)[..., 1:-1]                        # the 6 middle neighbours
    scatter = middle.std(axis=-1) * SCATTER_TO_SIGMA
    ok = g[:, 1:-1, 1:-1] & (seen.sum(axis=-1) >= 5)
    del around, seen, middle
    centre = v[:, 1:-1, 1:-1]
    margin = IMPULSE_SIGMAS * scatter + IMPULSE_MARGIN
    measured = np.where(g, v, np.nan).reshape(keep.size, -1)
    with np.errstate(all="ignore"):
        top = np.nanpercentile(measured, EXTREME, axis=1)[:, None, None]
        bottom = np.nanpercentile(measured, 100 - EXTREME, axis=1)[:, None, None]
    salt = (centre - high > margin) & (centre >= np.maximum(top, SATURATED))
    pepper = (low - centre > margin) & (centre <= bottom)
    spikes = ok & (salt | pepper)
    mask[keep, 1:-1, 1:-1] = spikes
    share[keep] = spikes.sum(axis=(1, 2)) / np.maximum(ok.sum(axis=(1, 2)), 1)
    return mask, share
