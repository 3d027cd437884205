"""What the reading measures on a scene: its sample windows, and the prompt metrics and severity
estimators pooled over them (a :class:`Survey`).

The scene is scaled to about [0, 1] (``measure_scaling``, the factor restoration uses;
:func:`scale_factor` for an array) and sampled on the scene analysis's grid
(``damp_engine.scene_analysis.sample_windows``: up to 8 × 8 windows of 64 × 64 pixels covering
it, fewer and smaller for small rasters), at full resolution. Windows less than a quarter valid
are skipped, and bands without any valid sample (e.g. absorption bands a provider blanked) are
left out and listed. Every window gives the six prompt metrics (the scene's value is the median
over windows, as the scene prompt); up to 16 of them, spread over the grid, also run the
closed-form estimators of ``damp_engine.severity``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import DampCancelled, DampInputError
from .names import METRIC_NAMES
from .severity import measure
from .severity_blur import FACTORS
from .severity_noise import weighted_median

if TYPE_CHECKING:
    from .raster import RasterReader

SEVERITY_WINDOWS = 16     # windows the severity estimators run on (a regular subset of the grid)
MIN_VALID_SHARE = 0.25    # a window with fewer pixels holding data is not sampled

Window = tuple[int, int, int, int]  # x0, y0, width, height


@dataclass(frozen=True)
class Survey:
    """What was measured on a scene's sample windows, pooled over them (scaled units, about [0, 1]).

    Per-band arrays cover the bands that hold data (``bands``, 0-based raster band indices);
    ``metrics`` is the median over windows of each prompt metric; the rest pools the severity
    estimators (``damp_engine.severity.Measures``) of the windows they ran on: medians for
    levels (σ, γ, stripe energies, ρ), means for shares (dead lines, impulses, replication).
    """

    metrics: dict[str, float]
    bands: np.ndarray
    no_data_bands: np.ndarray
    missing_fraction: float
    lost: np.ndarray
    sigma: np.ndarray
    sigma_bright: np.ndarray
    gamma: float
    gain: np.ndarray
    floor: np.ndarray
    rho: np.ndarray
    replication: dict[int, float]
    dead_cols: np.ndarray
    dead_rows: np.ndarray
    stripe_col: np.ndarray
    stripe_row: np.ndarray
    impulse: np.ndarray
    windows: list[Window] = field(default_factory=list)
    severity_windows: int = 0

    def stripe_scores(self) -> tuple[str, np.ndarray]:
        """The stronger stripe direction ("vertical": columns, "horizontal": rows) and, per band,
        log10 of its stripe F ratio (NaN for lost bands)."""
        with quiet():
            col, row = np.log10(np.maximum(self.stripe_col, 1e-12)), np.log10(np.maximum(self.stripe_row, 1e-12))
            vertical = not (np.nanpercentile(row, 80) > np.nanpercentile(col, 80)) if np.isfinite(col).any() else True
        return ("vertical", col) if vertical else ("horizontal", row)


def survey_windows(windows: Iterable[tuple[Window, np.ndarray, np.ndarray]], bands: np.ndarray,
                   no_data_bands: np.ndarray, cancelled: Callable[[], bool] | None = None) -> Survey:
    """Measure a scene from its sample windows ``(window, x, valid)`` (x scaled, bands with data only).

    Every window gives the six prompt metrics; a regular subset of at most ``SEVERITY_WINDOWS``
    also runs the severity estimators. Raises ``DampInputError`` when no window is usable.
    """
    from .prompt import compute_prompt

    items = list(windows)
    if not items:
        raise DampInputError("No part of the raster is at least a quarter valid pixels; there is nothing to read.")
    chosen = set(np.linspace(0, len(items) - 1, min(SEVERITY_WINDOWS, len(items))).round().astype(int).tolist())
    prompts, measures, used = [], [], []
    missing = pixels = 0
    for index, (window, x, valid) in enumerate(items):
        if cancelled is not None and cancelled():
            raise DampCancelled("The reading was cancelled.")
        used.append(window)
        if min(x.shape[-2:]) >= 8:
            prompts.append(compute_prompt(prompt_input(x, valid)).values[0].double().numpy())
        if index in chosen:
            m = measure(x, valid)
            measures.append(m)
            missing += int(m.missing.sum())
            pixels += m.missing.size
    if not prompts:
        raise DampInputError("The raster is too small to read: the degradation prompt needs 8 × 8 pixels.")
    metrics = dict(zip(METRIC_NAMES, np.median(np.stack(prompts), axis=0).tolist()))  # as the scene prompt
    lost = np.logical_and.reduce([m.lost for m in measures])

    def pooled(name: str, how: Callable = np.nanmedian, per_band: bool = True) -> np.ndarray:
        with quiet():
            out = how(np.stack([getattr(m, name) for m in measures]), axis=0)
        return np.where(lost, np.nan, out) if per_band else out

    gammas = np.concatenate([m.gamma for m in measures])
    weights = np.concatenate([m.gamma_weight for m in measures])
    return Survey(
        metrics=metrics, bands=np.asarray(bands), no_data_bands=np.asarray(no_data_bands),
        missing_fraction=missing / max(pixels, 1), lost=lost, sigma=pooled("sigma"),
        sigma_bright=pooled("sigma_bright"),
        gamma=weighted_median(gammas, weights), gain=pooled("gain"), floor=pooled("floor"),
        rho=pooled("rho", per_band=False), replication={f: float(np.mean([m.replication[f] for m in measures]))
                                        for f in FACTORS},
        dead_cols=pooled("dead_cols", np.nanmean), dead_rows=pooled("dead_rows", np.nanmean),
        stripe_col=pooled("stripe_col"), stripe_row=pooled("stripe_row"),
        impulse=pooled("impulse", np.nanmean), windows=used, severity_windows=len(measures),
    )


@contextmanager
def quiet() -> Iterator[None]:
    """Silence numpy's "All-NaN slice" / "Mean of empty slice" warnings: NaN is the intended answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def prompt_input(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """What the prompt metrics see: invalid samples 0 (as the degradations present gaps), pixels
    with no valid band at all at their band's median valid value (a swath edge is not a gap)."""
    out = np.where(valid, x, 0).astype(np.float32)
    void = ~valid.any(axis=0)
    if void.any():
        for band, ok, row in zip(x, valid, out):
            good = band[ok]
            row[void] = np.median(good) if good.size else 0.0
    return out


def scale_factor(cube: np.ndarray, valid: np.ndarray | None = None) -> float:
    """The robust factor that maps an array to about [0, 1]: the 99.9th percentile of its 3 × 3
    local means over all bands (the rule of ``damp_engine.scaling``, on every pixel)."""
    from .scaling import PERCENTILE, local_means

    cube = np.asarray(cube, np.float32)
    valid = np.isfinite(cube) if valid is None else (np.asarray(valid, bool) & np.isfinite(cube))
    means, ok = local_means(np.where(valid, cube, 0), valid)
    values = means[ok] if ok.any() else cube[valid]
    if values.size == 0:
        raise DampInputError("The array holds no valid value; there is nothing to read.")
    top = float(np.percentile(values, PERCENTILE))
    if not math.isfinite(top) or top <= 0:
        top = float(np.max(np.abs(values)))
    if top <= 0:
        raise DampInputError("The array is zero everywhere; there is nothing to read.")
    return top


def grid(region: Window) -> list[Window]:
    """The sample windows of a region (x0, y0, w, h): the scene analysis's grid
    (``damp_engine.scene_analysis.sample_windows``: up to 8 × 8 windows of 64 × 64 pixels
    covering the region), so that the reading measures what the scene prompt measures."""
    from .scene_analysis import sample_windows

    x0, y0, w, h = region
    return [(x0 + x, y0 + y, ww, hh) for x, y, ww, hh in sample_windows(w, h)]


def survey_cube(cube: np.ndarray, valid: np.ndarray | None = None,
                factor: float | None = None) -> tuple[Survey, float]:
    """The :class:`Survey` of an array (C, H, W) sampled as a raster would be, and the factor used."""
    cube = np.asarray(cube, np.float32)
    if cube.ndim != 3:
        raise DampInputError(f"Expected a cube (bands, rows, columns), got shape {cube.shape}.")
    valid = np.isfinite(cube) if valid is None else (np.asarray(valid, bool) & np.isfinite(cube))
    if cube.shape[0] < 3:
        raise DampInputError(f"The reading needs at least 3 bands; this array has {cube.shape[0]}.")
    factor = scale_factor(cube, valid) if factor is None else float(factor)
    has_data = valid.any(axis=(1, 2))
    bands = np.flatnonzero(has_data)
    if bands.size < 3:
        raise DampInputError(f"Only {bands.size} band(s) hold valid data; the reading needs at least 3.")

    def windows() -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        for x0, y0, w, h in grid((0, 0, cube.shape[2], cube.shape[1])):
            ok = valid[bands, y0:y0 + h, x0:x0 + w]
            if ok.any(axis=0).mean() >= MIN_VALID_SHARE:
                yield (x0, y0, w, h), cube[bands, y0:y0 + h, x0:x0 + w] / np.float32(factor), ok

    return survey_windows(windows(), bands, ~has_data), factor


def survey_raster(reader: RasterReader, region: Window,
                  cancelled: Callable[[], bool] | None = None) -> tuple[Survey, float]:
    """The :class:`Survey` of the pixel ``region`` (x0, y0, w, h) of an open raster, and the factor
    that scaled it (``measure_scaling``, the one restoration uses).

    Raises ``DampInputError`` for fewer than 3 bands with data, ``DampCancelled`` when
    ``cancelled()`` turns True.
    """
    from .scaling import measure_scaling

    scaling = measure_scaling(reader)
    bands = np.flatnonzero(scaling.good_bands)
    if bands.size < 3:
        raise DampInputError(f"{reader.info.path} has fewer than 3 bands with valid data; the reading needs "
                             "at least 3.")

    def windows() -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
        for x0, y0, w, h in grid(region):
            data, ok = reader.read(x0, y0, w, h)
            data, ok = data[bands], ok[bands]
            if ok.any(axis=0).mean() >= MIN_VALID_SHARE:
                yield (x0, y0, w, h), data / np.float32(scaling.factor), ok

    return survey_windows(windows(), bands, ~scaling.good_bands, cancelled), scaling.factor
