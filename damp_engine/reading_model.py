"""The reading's classifier: the features it reads a :class:`~damp_engine.survey.Survey` by, and
the one-vs-rest logistic model, Platt-calibrated, that turns them into one probability per family.

It is shipped as numbers in ``resources/models/reading.json`` (written by
``scripts/train_reading.py``) and evaluated with numpy alone.

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DampInputError
from .names import FAMILIES, METRIC_NAMES
from .survey import Survey, quiet

DEFAULT_READING_MODEL = Path(__file__).resolve().parent.parent / "resources" / "models" / "reading.json"
FORMAT = "damp-reading"

EXTRA_FEATURES: tuple[str, ...] = ("noise", "noise_spread", "noise_exponent", "blur", "replication",
                                   "missing", "lost", "dead", "stripes", "impulse")
FEATURES: tuple[str, ...] = tuple(f"prompt_{name}" for name in METRIC_NAMES) + EXTRA_FEATURES


def features(s: Survey) -> dict[str, float]:
    """The classifier's inputs (:data:`FEATURES`): the six metrics, transformed to be about
    Gaussian, and the extra closed-form features (module docstring). NaN where undefined."""
    m = s.metrics
    sigma = s.sigma[np.isfinite(s.sigma)]
    bright = s.sigma_bright[np.isfinite(s.sigma_bright)]
    with quiet():
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
