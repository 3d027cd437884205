"""Read the degradation: which families of degradation a raster shows, how likely, and how strong.

The six degradation-prompt metrics say *that* something is wrong; this module says *what*, for
people. It is the one engine function behind ``damp prompt`` (plain and ``--json``), the QGIS
dock's reading and the *Degradation prompt* algorithm: :func:`read_raster` for a file (whole,
or one pixel window of it) and :func:`read_cube` for an array.

How a raster is read
--------------------
1. The raster is scaled to about [0, 1] (``measure_scaling``, the factor restoration uses;
   :func:`scale_factor` for an array) and sampled on the scene analysis's grid
   (``damp_engine.scene_analysis.sample_windows``: up to 8 × 8 windows of 64 × 64 pixels
   covering it, fewer and smaller for small rasters), at full resolution. Windows less than a quarter valid are skipped, and bands without any valid
   sample (e.g. absorption bands a provider blanked) are left out and listed.
2. On every window: the six prompt metrics (``damp_engine.prompt``; the scene's value is the
   median over windows, as the scene prompt). On up to 16 of the windows, spread over the
   grid: the closed-form estimators of ``damp_engine.severity`` (noise σ per band and how it
   grows with the signal, derivative autocorrelation for blur, block replication, missing
   pixels, lost bands, dead lines, stripes and impulses), pooled over the windows.
3. A classifier turns the prompt and those estimates (:data:`FEATURES`) into one calibrated
   probability per family (:data:`FAMILIES`); a family is *present* from probability 0.5.
   It is a one-vs-rest logistic regression, Platt-calibrated on scenes it was not fitted on,
   shipped as numbers in ``resources/models/reading.json`` (written by
   ``scripts/train_reading.py``) and evaluated here with numpy alone.
4. The severities of the present families are given in the raster's own units (after band
   scale and offset) and band numbers are 1-based, as GIS software numbers them.

The extra features, and why the six metrics alone are not enough
------------------------------------------------------------------
The prompt metrics are averages designed to route a network; several degradations move them
alike or hardly at all (pixel replication keeps HFER, and stripes on a third of the bands barely
move any mean). Each extra feature is the physical signature of one family:

============== =================================================================================
noise          log10 of the 75th percentile over bands of the noise σ among the brightest
               eighth of each band's pixels (finest wavelet sub-band, spectrally decorrelated):
               the noise where there is most signal, so photon noise counts fully, and noise in
               a quarter of the bands counts too
noise_spread   log of the 90th / 10th percentile of σ over bands (non-i.i.d. noise)
noise_exponent γ in σ² ∝ μ^γ (0: additive Gaussian, 1: photon noise)
blur           the largest lag-one autocorrelation of first differences over 4 directions: the
               most blurred direction, so that blur along one direction only (motion) counts
               as much as blur along all
replication    −log10 of the block-replication ratio (coarse pixels copied onto a finer grid)
missing        log10 of the share of pixels without data (zero spectra, nodata)
lost           share of bands that are constant (zeroed)
dead           log10 of the mean share of dead (all-zero) lines per band
stripes        the 80th percentile over bands of log10 of the stripe F ratio (line means of
               what neighbouring bands do not explain, against their within-line scatter),
               along whichever direction is stronger
impulse        log10 of the 80th percentile over bands of the share of isolated spikes
============== =================================================================================
"""
from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from . import severity
from .errors import DampCancelled, DampInputError
from .names import FAMILIES, FAMILY_TITLES, METRIC_NAMES, METRIC_TITLES

DEFAULT_READING_MODEL = Path(__file__).resolve().parent.parent / "resources" / "models" / "reading.json"
SEVERITY_WINDOWS = 16     # windows the severity estimators run on (a regular subset of the grid)
MIN_VALID_SHARE = 0.25    # a window with fewer pixels holding data is not sampled
PRESENT = 0.5             # a family with at least this probability is read as present
FORMAT = "damp-reading"

EXTRA_FEATURES: tuple[str, ...] = ("noise", "noise_spread", "noise_exponent", "blur", "replication",
                                   "missing", "lost", "dead", "stripes", "impulse")
FEATURES: tuple[str, ...] = tuple(f"prompt_{name}" for name in METRIC_NAMES) + EXTRA_FEATURES

Window = tuple[int, int, int, int]  # x0, y0, width, height


# ----------------------------------------------------------------------------- the survey of a scene

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
        with _quiet():
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
            m = severity.measure(x, valid)
            measures.append(m)
            missing += int(m.missing.sum())
            pixels += m.missing.size
    if not prompts:
        raise DampInputError("The raster is too small to read: the degradation prompt needs 8 × 8 pixels.")
    metrics = dict(zip(METRIC_NAMES, lower_median(np.stack(prompts)).tolist()))
    lost = np.logical_and.reduce([m.lost for m in measures])

    def pooled(name: str, how: Callable = np.nanmedian, per_band: bool = True) -> np.ndarray:
        with _quiet():
            out = how(np.stack([getattr(m, name) for m in measures]), axis=0)
        return np.where(lost, np.nan, out) if per_band else out

    gammas = np.concatenate([m.gamma for m in measures])
    weights = np.concatenate([m.gamma_weight for m in measures])
    return Survey(
        metrics=metrics, bands=np.asarray(bands), no_data_bands=np.asarray(no_data_bands),
        missing_fraction=missing / max(pixels, 1), lost=lost, sigma=pooled("sigma"),
        sigma_bright=pooled("sigma_bright"),
        gamma=severity.weighted_median(gammas, weights), gain=pooled("gain"), floor=pooled("floor"),
        rho=pooled("rho", per_band=False), replication={f: float(np.mean([m.replication[f] for m in measures]))
                                        for f in severity.FACTORS},
        dead_cols=pooled("dead_cols", np.nanmean), dead_rows=pooled("dead_rows", np.nanmean),
        stripe_col=pooled("stripe_col"), stripe_row=pooled("stripe_row"),
        impulse=pooled("impulse", np.nanmean), windows=used, severity_windows=len(measures),
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's "All-NaN slice" / "Mean of empty slice" warnings: NaN is the intended answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def lower_median(values: np.ndarray) -> np.ndarray:
    """The median over the first axis, the lower middle value for an even count (as torch.median,
    which the scene prompt uses), so that the reading's metrics are the scene prompt's."""
    return np.sort(values, axis=0)[(values.shape[0] - 1) // 2]


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


# ----------------------------------------------------------------------------- features

def features(s: Survey) -> dict[str, float]:
    """The classifier's inputs (:data:`FEATURES`): the six metrics, transformed to be about
    Gaussian, and the extra closed-form features (module docstring). NaN where undefined."""
    m = s.metrics
    sigma = s.sigma[np.isfinite(s.sigma)]
    bright = s.sigma_bright[np.isfinite(s.sigma_bright)]
    with _quiet():
        p10, p90 = (np.percentile(sigma, q) for q in (10, 90)) if sigma.size else (np.nan,) * 2
        p50 = np.percentile(bright, 75) if bright.size else np.nan  # noise in a quarter of the bands counts
        score = s.stripe_scores()[1]
        score = score[np.isfinite(score)]
        stripes = np.percentile(score, 80) if score.size else np.nan
        dead = np.nanmean(np.maximum(s.dead_cols, s.dead_rows)) if (~s.lost).any() else np.nan
        impulse = np.nanpercentile(s.impulse, 80) if (~s.lost).any() else np.nan
    rho = s.rho[np.isfinite(s.rho)]
    out = {
        "prompt_hfer": math.log(max(m["hfer"], 1e-6)),
        "prompt_stu": m["stu"],
        "prompt_scm": math.log(max(m["scm"], 1e-8)),
        "prompt_scs": math.log(max(m["scs"], 1e-8)),
        "prompt_gstd": math.log(max(m["gstd"], 1e-8)),
        "prompt_scc": math.log(max(1.0 - m["scc"], 1e-6)),
        "noise": math.log10(max(p50, 1e-5)) if np.isfinite(p50) else np.nan,
        "noise_spread": math.log(max(p90, 1e-6) / max(p10, 1e-6)) if np.isfinite(p50) else np.nan,
        "noise_exponent": float(np.clip(s.gamma, -2.0, 4.0)) if np.isfinite(s.gamma) else np.nan,
        "blur": float(rho.max()) if rho.size else np.nan,
        "replication": -math.log10(min(s.replication.values()) + 1e-3),
        "missing": math.log10(s.missing_fraction + 1e-4),
        "lost": float(s.lost.mean()) if s.lost.size else 0.0,
        "dead": math.log10(dead + 1e-4) if np.isfinite(dead) else np.nan,
        "stripes": float(stripes),
        "impulse": math.log10(impulse + 1e-4) if np.isfinite(impulse) else np.nan,
    }
    return {name: float(out[name]) for name in FEATURES}


# ----------------------------------------------------------------------------- the classifier

@dataclass(frozen=True)
class ReadingModel:
    """The reading classifier, as shipped in ``reading.json``: numbers, evaluated with numpy.

    One logistic model per degradation family k (every family but clean), on standardised
    features z = (f − mean) / scale (an undefined feature counts as the training mean, z = 0):
    logit_k = w_k · z + b_k, calibrated by Platt scaling p_k = 1 / (1 + exp(−(a_k · logit_k + c_k))).
    Clean means no degradation at all: p_clean = Π_k (1 − p_k), so that a raster is never read
    as clean and degraded at once. ``clean_ranges`` holds the 5th and 95th percentiles of each
    metric on clean training crops (the evidence is judged against them); ``blur_calibration``
    maps the raw blur estimate to the PSF σ: σ = slope · s + offset.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    platt: np.ndarray
    clean_ranges: dict[str, tuple[float, float]]
    blur_calibration: tuple[float, float] = (1.0, 0.0)
    info: dict = field(default_factory=dict)

    families: tuple[str, ...] = FAMILIES
    degradations: tuple[str, ...] = FAMILIES[1:]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReadingModel:
        if data.get("format") != FORMAT:
            raise DampInputError(f"Not a DAMP reading model (format {data.get('format')!r}); "
                                 "regenerate it with scripts/train_reading.py.")
        if tuple(data.get("degradations", ())) != FAMILIES[1:] or tuple(data.get("features", ())) != FEATURES:
            raise DampInputError("The reading model does not match this engine's families and features; "
                                 "regenerate it with scripts/train_reading.py.")
        return cls(
            features=tuple(data["features"]),
            mean=np.asarray(data["feature_mean"], float), scale=np.asarray(data["feature_scale"], float),
            weights=np.asarray(data["weights"], float), bias=np.asarray(data["bias"], float),
            platt=np.asarray(data["platt"], float),
            clean_ranges={k: (float(v[0]), float(v[1])) for k, v in data["clean_ranges"].items()},
            blur_calibration=tuple(float(v) for v in data.get("blur_calibration", (1.0, 0.0))),
            info=dict(data.get("training", {})),
        )

    def to_dict(self) -> dict:
        return {
            "format": FORMAT, "version": 1, "families": list(self.families),
            "degradations": list(self.degradations), "clean": "product of (1 - p) over the degradations",
            "features": list(self.features),
            "feature_mean": self.mean.tolist(), "feature_scale": self.scale.tolist(),
            "weights": self.weights.tolist(), "bias": self.bias.tolist(), "platt": self.platt.tolist(),
            "clean_ranges": {k: list(v) for k, v in self.clean_ranges.items()},
            "blur_calibration": list(self.blur_calibration), "training": self.info,
        }

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """(…, D) features → z-scores, undefined (NaN) features at 0."""
        z = (np.asarray(values, float) - self.mean) / self.scale
        return np.where(np.isfinite(z), z, 0.0)

    def logits(self, values: np.ndarray) -> np.ndarray:
        """(…, D) features → (…, K − 1) uncalibrated logits of the degradations."""
        return self.standardise(values) @ self.weights.T + self.bias

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """(…, D) features → (…, K) calibrated probabilities, in ``FAMILIES`` order (clean first)."""
        z = self.platt[:, 0] * self.logits(values) + self.platt[:, 1]
        degraded = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        clean = np.prod(1.0 - degraded, axis=-1, keepdims=True)
        return np.concatenate([clean, degraded], axis=-1)


def load_reading_model(path: str | os.PathLike | None = None) -> ReadingModel:
    """The reading classifier from ``path`` (default: the bundled ``resources/models/reading.json``)."""
    return _load(str(Path(path) if path is not None else DEFAULT_READING_MODEL))


@lru_cache(maxsize=4)
def _load(path: str) -> ReadingModel:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DampInputError(f"The reading model {path} is missing; reinstall DAMP or regenerate it with "
                             "scripts/train_reading.py.") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DampInputError(f"The reading model {path} cannot be read ({exc}); regenerate it with "
                             "scripts/train_reading.py.") from None
    return ReadingModel.from_dict(data)


# ----------------------------------------------------------------------------- the reading

@dataclass(frozen=True)
class Reading:
    """The reading of a raster: family probabilities, the severities of those present, in words.

    families:  {family: calibrated probability}, in :data:`FAMILIES` order.
    top:       the most probable family.
    severity:  physical severities of the present families, in the raster's units (below).
    sentence:  the reading in one sentence.
    evidence:  the observations behind it, one sentence each.
    metrics:   the six prompt metrics the reading was made from (median over its windows).
    features:  the classifier's inputs (:data:`FEATURES`).

    Severity keys (each only where it applies): ``noise_sigma`` (median over bands),
    ``noise_sigma_per_band`` (None for lost bands), ``noise_exponent``, ``signal_dependent``,
    ``noise_gain`` and ``noise_floor`` (σ² = gain·value + floor²), ``blur_width_px`` (FWHM of
    the equivalent Gaussian PSF), ``coarse_factor``, ``missing_fraction``, ``lost_bands``,
    ``striped_bands`` and ``stripe_direction``, ``dead_line_bands`` and ``dead_line_direction``,
    ``impulse_fraction`` and ``impulse_bands``, ``no_data_bands``. Bands are 1-based.
    """

    families: dict[str, float]
    top: str
    severity: dict[str, Any]
    sentence: str
    evidence: list[str]
    metrics: dict[str, float]
    features: dict[str, float]

    @property
    def present(self) -> list[str]:
        """The families read as present (probability ≥ 0.5), most probable first."""
        return [name for name, p in sorted(self.families.items(), key=lambda kv: -kv[1]) if p >= PRESENT]

    @property
    def probability(self) -> float:
        """The probability of the top family."""
        return self.families[self.top]

    def to_dict(self) -> dict:
        """The JSON form: ``{"families", "top", "present", "severity", "sentence", "evidence", "metrics"}``."""
        return {"families": dict(self.families), "top": self.top, "present": self.present,
                "severity": _plain(self.severity), "sentence": self.sentence, "evidence": list(self.evidence),
                "metrics": dict(self.metrics)}


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python ones and NaN into None (JSON-safe)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def interpret(s: Survey, factor: float, model: ReadingModel | None = None) -> Reading:
    """The reading of a survey: probabilities, severities in raster units (``factor`` × scaled), words."""
    model = model or load_reading_model()
    values = features(s)
    vector = np.array([values[name] for name in model.features])
    probabilities = dict(zip(model.families, model.probabilities(vector).tolist()))
    top = max(probabilities, key=probabilities.get)
    present = [k for k, p in sorted(probabilities.items(), key=lambda kv: -kv[1]) if p >= PRESENT]
    sev, notes = _severity(s, factor, model, set(present))
    evidence = _metric_evidence(s.metrics, model.clean_ranges) + notes
    return Reading(probabilities, top, sev, _sentence(probabilities, top, present, sev), evidence,
                   dict(s.metrics), values)


def _band_list(numbers: Iterable[int], limit: int = 12) -> str:
    """1-based band numbers as text with runs joined: "3, 7–9, 31" (at most ``limit`` items)."""
    numbers = sorted(int(n) for n in numbers)
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    text = ", ".join(parts[:limit])
    return text + (f" and {len(parts) - limit} more" if len(parts) > limit else "")


def _severity(s: Survey, factor: float, model: ReadingModel, present: set[str]) -> tuple[dict, list[str]]:
    """Severity values (raster units, 1-based bands) of the present families, and their evidence."""
    sev: dict[str, Any] = {}
    notes: list[str] = []
    number = s.bands + 1  # 1-based raster band number of each surveyed band
    good = ~s.lost & np.isfinite(s.sigma)
    if present & {"gaussian_noise", "signal_dependent_noise"} and good.any():
        sigma = float(np.median(s.sigma[good])) * factor
        per_band: list[float | None] = [None] * s.no_data_bands.size  # one entry per raster band
        for b, value, ok in zip(s.bands, s.sigma, good):
            per_band[int(b)] = float(value) * factor if ok else None
        sev.update(noise_sigma=sigma, noise_sigma_per_band=per_band,
                   noise_exponent=float(s.gamma) if np.isfinite(s.gamma) else None,
                   signal_dependent="signal_dependent_noise" in present)
        low, high = (float(np.percentile(s.sigma[good], q)) * factor for q in (10, 90))
        notes.append(f"noise σ {sigma:.4g} per band (median; 10–90 % of bands {low:.4g}–{high:.4g}), from the "
                     "wavelet MAD of the finest diagonal sub-band after removing what neighbouring bands explain")
        if np.isfinite(s.gamma):
            notes.append(f"noise variance grows as intensity^{s.gamma:.2f} (0 for additive noise, 1 for photon noise)")
        if "signal_dependent_noise" in present:
            ok = good & np.isfinite(s.gain) & np.isfinite(s.floor)
            if ok.any():
                sev["noise_gain"] = float(np.median(s.gain[ok])) * factor
                sev["noise_floor"] = float(np.median(s.floor[ok])) * factor
                notes.append(f"σ² ≈ {sev['noise_gain']:.3g} · value + {sev['noise_floor']:.3g}² "
                             "(the Poisson-Gaussian model)")
    if "blur" in present:
        raw = float(np.mean(severity.blur_sigma(s.rho)))
        slope, offset = model.blur_calibration
        psf = max(slope * raw + offset, 0.0) if raw > 0 else 0.0
        sev["blur_width_px"] = psf * severity.FWHM_PER_SIGMA
        strongest = int(np.nanargmax(s.rho)) if np.isfinite(s.rho).any() else 0
        direction = ("along rows", "along columns", "along the diagonal", "along the anti-diagonal")[strongest]
        notes.append(f"neighbouring differences correlate (ρ = {', '.join(f'{r:.2f}' for r in s.rho)} along x, y "
                     f"and the diagonals; strongest {direction}): a point spreads over about "
                     f"{sev['blur_width_px']:.1f} px (FWHM)")
    factor_found = severity.coarse_factor(s.replication)
    if "coarse_resolution" in present or factor_found > 1:
        sev["coarse_factor"] = factor_found
        if factor_found > 1:
            notes.append(f"pixels are copies of {factor_found} × {factor_found} blocks (differences inside blocks "
                         f"are {100 * s.replication[factor_found]:.2g} % of those across): coarse pixels on a finer grid")
    if "missing_pixels" in present or s.missing_fraction > 0.01:
        sev["missing_fraction"] = s.missing_fraction
        notes.append(f"{100 * s.missing_fraction:.3g} % of the sampled pixels hold no data (zero spectra or nodata)")
    lost = number[s.lost]
    if "lost_bands" in present or lost.size:
        sev["lost_bands"] = [int(b) for b in lost]
        if lost.size:
            notes.append(f"{lost.size} of {s.bands.size} bands are constant (lost): {_band_list(lost)}")
    if "stripes" in present:
        direction, score = s.stripe_scores()
        striped = number[np.isfinite(score) & (score > STRIPED)]
        sev["striped_bands"] = [int(b) for b in striped]
        sev["stripe_direction"] = direction
        lines = "column" if direction == "vertical" else "row"
        notes.append(f"{striped.size} band(s) have {lines} offsets that neighbouring bands do not share (line means "
                     f"vary over {10 ** STRIPED:.0f} times what their noise explains): {_band_list(striped)}")
    if "dead_lines" in present:
        share = np.maximum(s.dead_cols, s.dead_rows)
        dead = number[np.nan_to_num(share) > 0]
        columns = np.nansum(s.dead_cols) >= np.nansum(s.dead_rows)
        sev["dead_line_bands"] = [int(b) for b in dead]
        sev["dead_line_direction"] = "columns" if columns else "rows"
        notes.append(f"{dead.size} band(s) have whole {'columns' if columns else 'rows'} at exactly 0 where the "
                     f"scene has signal: {_band_list(dead)}")
    if "impulse_noise" in present:
        hit = np.nan_to_num(s.impulse) > IMPULSE_BAND
        sev["impulse_fraction"] = float(np.nanmean(s.impulse)) if (~s.lost).any() else 0.0
        sev["impulse_bands"] = [int(b) for b in number[hit]]
        notes.append(f"{100 * sev['impulse_fraction']:.2g} % of samples are isolated spikes above or below all 8 "
                     f"neighbours, in {int(hit.sum())} band(s)")
    if s.no_data_bands.any():
        sev["no_data_bands"] = [int(b) + 1 for b in np.flatnonzero(s.no_data_bands)]
        notes.append(f"{int(s.no_data_bands.sum())} band(s) hold no valid data and were left out: "
                     f"{_band_list(sev['no_data_bands'])}")
    return sev, notes


STRIPED = 1.5        # log10 of the stripe F ratio above which a band counts as striped
IMPULSE_BAND = 0.005  # share of spikes above which a band counts as hit by impulse noise


def _metric_evidence(metrics: Mapping[str, float], clean: Mapping[str, tuple[float, float]]) -> list[str]:
    """One line per prompt metric outside its clean range, with its value and the range."""
    lines = []
    for name in METRIC_NAMES:
        value = metrics[name]
        low, high = clean[name]
        if low <= value <= high:
            continue
        side = "above" if value > high else "below"
        lines.append(f"{METRIC_TITLES[name]} ({name.upper()}) {value:.3g} is {side} the clean range {low:.3g}–{high:.3g}")
    if not lines:
        lines.append("all six prompt metrics lie inside their clean ranges")
    return lines


def _detail(family: str, sev: Mapping[str, Any]) -> str:
    """The severity phrase of a present family for the sentence ("" when there is none)."""
    if family == "gaussian_noise" and "noise_sigma" in sev:
        return f", σ ≈ {sev['noise_sigma']:.3g} (median over bands)"
    if family == "signal_dependent_noise" and "noise_sigma" in sev:
        return f", σ ≈ {sev['noise_sigma']:.3g} at the median and growing with the signal"
    if family == "blur" and "blur_width_px" in sev:
        return f", about {sev['blur_width_px']:.1f} px wide (FWHM)"
    if family == "coarse_resolution" and sev.get("coarse_factor", 1) > 1:
        return f", pixels copied in {sev['coarse_factor']} × {sev['coarse_factor']} blocks"
    if family == "missing_pixels" and "missing_fraction" in sev:
        return f", {100 * sev['missing_fraction']:.3g} % of pixels"
    if family == "lost_bands" and sev.get("lost_bands"):
        return f", band{'s' if len(sev['lost_bands']) > 1 else ''} {_band_list(sev['lost_bands'], 6)}"
    if family == "stripes" and "stripe_direction" in sev:
        return f", {sev['stripe_direction']}, in {len(sev['striped_bands'])} band(s)"
    if family == "dead_lines" and "dead_line_bands" in sev:
        return f", dead {sev['dead_line_direction']} in {len(sev['dead_line_bands'])} band(s)"
    if family == "impulse_noise" and "impulse_fraction" in sev:
        return f", {100 * sev['impulse_fraction']:.2g} % of samples"
    return ""


def _sentence(probabilities: Mapping[str, float], top: str, present: list[str], sev: Mapping[str, Any]) -> str:
    """The reading in one sentence, e.g. "Gaussian noise (98 %), σ ≈ 12.3 (median over bands)."."""
    def named(family: str) -> str:
        return f"{FAMILY_TITLES[family]} ({100 * probabilities[family]:.0f} %)"

    degradations = [f for f in present if f != "clean"]
    if not degradations:
        if top == "clean":
            text = f"{named('clean')}: no degradation stands out"
        else:
            text = f"no degradation is certain; most likely {named(top)}"
    else:
        parts = [named(f) + _detail(f, sev) for f in degradations]
        text = parts[0] + "".join(f"; with {p}" for p in parts[1:])
    return text[:1].upper() + text[1:] + "."


# ----------------------------------------------------------------------------- entry points

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


def read_cube(cube: np.ndarray, valid: np.ndarray | None = None, factor: float | None = None,
              model: ReadingModel | str | os.PathLike | None = None) -> Reading:
    """Read the degradation of an array (C, H, W) in its own units, as :func:`read_raster` reads a file.

    ``valid`` marks samples that hold data (default: the finite ones); ``factor`` maps the values
    to about [0, 1] (default :func:`scale_factor`). Severities come back in the array's units.
    """
    surveyed, factor = survey_cube(cube, valid, factor)
    return interpret(surveyed, factor, _model(model))


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


def read_raster(path: str | os.PathLike, window: Window | None = None,
                model: ReadingModel | str | os.PathLike | None = None,
                cancelled: Callable[[], bool] | None = None) -> Reading:
    """Read the degradation of the raster ``path``, whole or in the pixel ``window`` (x0, y0, w, h).

    This is the function behind ``damp prompt``, the dock's reading and the *Degradation prompt*
    algorithm. ``model`` is the reading classifier (default: the bundled one). Raises
    ``DampInputError`` for a raster with fewer than 3 bands with data, a window outside it, or
    no part at least a quarter valid; ``DampCancelled`` when ``cancelled()`` turns True.
    """
    from .raster import RasterReader
    from .scaling import measure_scaling

    with RasterReader(path, min_bands=3) as reader:
        info = reader.info
        region = _region(info.width, info.height, window)
        scaling = measure_scaling(reader)
        bands = np.flatnonzero(scaling.good_bands)
        if bands.size < 3:
            raise DampInputError(f"{path} has fewer than 3 bands with valid data; the reading needs at least 3.")

        def windows() -> Iterator[tuple[Window, np.ndarray, np.ndarray]]:
            for x0, y0, w, h in grid(region):
                data, ok = reader.read(x0, y0, w, h)
                data, ok = data[bands], ok[bands]
                if ok.any(axis=0).mean() >= MIN_VALID_SHARE:
                    yield (x0, y0, w, h), data / np.float32(scaling.factor), ok

        surveyed = survey_windows(windows(), bands, ~scaling.good_bands, cancelled)
    return interpret(surveyed, scaling.factor, _model(model))


def _model(model: ReadingModel | str | os.PathLike | None) -> ReadingModel:
    return model if isinstance(model, ReadingModel) else load_reading_model(model)


def _region(width: int, height: int, window: Window | None) -> Window:
    """``window`` clipped to the raster (the whole raster for None); at least 8 × 8 pixels."""
    if window is None:
        return (0, 0, width, height)
    x0, y0, w, h = (int(v) for v in window)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if xb <= xa or yb <= ya:
        raise DampInputError(f"The window {window} lies outside the {width} × {height} raster; pan to the layer.")
    if min(xb - xa, yb - ya) < 8:
        raise DampInputError(f"The window is {xb - xa} × {yb - ya} pixels; the reading needs at least 8 × 8. Zoom out.")
    return (xa, ya, xb - xa, yb - ya)
