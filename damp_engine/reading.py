"""Read the degradation: which families of degradation a raster shows, how likely, and how strong.

The six degradation-prompt metrics say *that* something is wrong; this module says *what*, for
people. It is the one engine function behind ``damp prompt`` (plain and ``--json``), the QGIS
dock's reading and the *Degradation prompt* algorithm: :func:`read_raster` for a file (whole,
or one pixel window of it) and :func:`read_cube` for an array.

How a raster is read
--------------------
1. ``damp_engine.survey``: the raster is scaled to about [0, 1] and sampled on the scene
   analysis's grid; every window gives the six prompt metrics, up to 16 of them also the
   closed-form estimators of ``damp_engine.severity`` (noise σ per band and how it grows with
   the signal, blur, block replication, missing pixels, lost bands, dead lines, stripes and
   impulses), pooled over the windows.
2. ``damp_engine.reading_model``: a classifier turns the prompt and those estimates into one
   calibrated probability per family (``damp_engine.names.FAMILIES``); a family is *present*
   from probability 0.5.
3. ``damp_engine.reading_words``: the severities of the present families in the raster's own
   units, the evidence, and one sentence that says it.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DampInputError
from .reading_model import ReadingModel, features, load_reading_model
from .reading_words import metric_evidence, sentence, severities
from .survey import Survey, Window, survey_cube, survey_raster

PRESENT = 0.5             # a family with at least this probability is read as present


@dataclass(frozen=True)
class Reading:
    """The reading of a raster: family probabilities, the severities of those present, in words.

    families:  {family: calibrated probability}, in ``names.FAMILIES`` order.
    top:       the most probable family.
    severity:  physical severities of the present families, in the raster's units (below).
    sentence:  the reading in one sentence.
    evidence:  the observations behind it, one sentence each.
    metrics:   the six prompt metrics the reading was made from (median over its windows).
    features:  the classifier's inputs (``reading_model.FEATURES``).

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
    sev, notes = severities(s, factor, model, set(present))
    evidence = metric_evidence(s.metrics, model.clean_ranges) + notes
    return Reading(probabilities, top, sev, sentence(probabilities, top, present, sev), evidence,
                   dict(s.metrics), values)


def read_cube(cube: np.ndarray, valid: np.ndarray | None = None, factor: float | None = None,
              model: ReadingModel | str | os.PathLike | None = None) -> Reading:
    """Read the degradation of an array (C, H, W) in its own units, as :func:`read_raster` reads a file.

    ``valid`` marks samples that hold data (default: the finite ones); ``factor`` maps the values
    to about [0, 1] (default :func:`scale_factor`). Severities come back in the array's units.
    """
    surveyed, factor = survey_cube(cube, valid, factor)
    return interpret(surveyed, factor, _model(model))


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

    with RasterReader(path, min_bands=3) as reader:
        region = _region(reader.info.width, reader.info.height, window)
        surveyed, factor = survey_raster(reader, region, cancelled)
    return interpret(surveyed, factor, _model(model))


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
