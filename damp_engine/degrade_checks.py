"""Checking a degradation request before anything is drawn: the kind, every parameter's name and
value (defaults filled in from ``names.PARAMETERS``), the seed and the cube. Every problem is a
``DampInputError`` that says what a good value looks like."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .errors import DampInputError
from .names import KINDS, PARAMETERS, SPARSE_EXTRAS


def resolve_params(kind: str, params: dict) -> dict:
    """Check the kind and parameter names, fill in defaults and validate every value."""
    if kind not in PARAMETERS:
        raise DampInputError(f"Unknown degradation kind {kind!r}; choose one of: {', '.join(KINDS)}.")
    unknown = sorted(set(params) - set(PARAMETERS[kind]))
    if unknown:
        raise DampInputError(f"Unknown parameter(s) {', '.join(unknown)} for {kind!r}; "
                             f"it accepts: {', '.join(PARAMETERS[kind])}.")
    merged = {**PARAMETERS[kind], **params}
    return {name: _VALIDATE[name](value, kind) for name, value in merged.items()}


def _sigma(value: Any, kind: str) -> float:
    """A noise level in 0-255 units, ≥ 0."""
    return _number(value, f"{kind}: sigma", low=0.0)


def _sigmas(value: Any, kind: str) -> list[float]:
    """A non-empty list of noise levels in 0-255 units, each ≥ 0."""
    require(isinstance(value, (list, tuple)) and len(value) > 0,
             f"{kind}: sigmas must be a non-empty list of noise levels (0-255 units), e.g. [10, 30, 50, 70].")
    return [_number(v, f"{kind}: sigmas", low=0.0) for v in value]


def _scale(value: Any, kind: str) -> float:
    """Poisson scale (photons per unit intensity), > 0."""
    scale = _number(value, f"{kind}: scale", low=0.0)
    require(scale > 0, f"{kind}: scale must be > 0 (e.g. 10 to 100).")
    return scale


def _kernel_size(value: Any, kind: str) -> int:
    """An odd kernel size ≥ 3."""
    return odd_size(value, f"{kind}: kernel size")


def _angle(value: Any, kind: str) -> float:
    """A motion direction in degrees."""
    return _number(value, f"{kind}: angle")


def _factor(value: Any, kind: str) -> int:
    """SR factor: 2 or 4."""
    require(_is_number(value) and value in (2, 4), f"{kind}: factor must be 2 or 4, not {value!r}.")
    return int(value)


def _fraction(value: Any, kind: str) -> float:
    """A share strictly between 0 and 1."""
    fraction = _number(value, f"{kind}: fraction")
    require(0 < fraction < 1, f"{kind}: fraction must be between 0 and 1 (exclusive), not {value!r}.")
    return fraction


def _band_fraction(value: Any, kind: str) -> float:
    """A share of bands in (0, 1]."""
    fraction = _number(value, f"{kind}: band_fraction")
    require(0 < fraction <= 1, f"{kind}: band_fraction must be in (0, 1], not {value!r}.")
    return fraction


def _amplitude(value: Any, kind: str) -> float:
    """A stripe amplitude ≥ 0 in data units."""
    return _number(value, f"{kind}: amplitude", low=0.0)


def _extra(value: Any, kind: str) -> str:
    """The sparse corruption of complex: one of SPARSE_EXTRAS or "random"."""
    choices = ("random", *SPARSE_EXTRAS)
    require(value in choices, f"{kind}: extra must be one of {', '.join(choices)}, not {value!r}.")
    return str(value)


_VALIDATE: dict[str, Callable[[Any, str], Any]] = {
    "sigma": _sigma, "sigmas": _sigmas, "scale": _scale, "ksize": _kernel_size,
    "size": _kernel_size, "angle": _angle, "factor": _factor, "fraction": _fraction,
    "band_fraction": _band_fraction, "amplitude": _amplitude, "extra": _extra,
}


def _is_number(value: Any) -> bool:
    """True for real numbers (bool excluded) that are finite."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


def _number(value: Any, what: str, low: float | None = None) -> float:
    """``value`` as a float, checked to be a finite number ≥ ``low``."""
    require(_is_number(value), f"{what} must be a number, not {value!r}.")
    if low is not None:
        require(value >= low, f"{what} must be ≥ {low:g}, not {value!r}.")
    return float(value)


def odd_size(value: Any, what: str) -> int:
    """``value`` as an int, checked to be an odd integer ≥ 3."""
    ok = _is_number(value) and float(value).is_integer() and value >= 3 and int(value) % 2 == 1
    require(ok, f"{what} must be an odd integer ≥ 3 (e.g. 9 or 15), not {value!r}.")
    return int(value)


def check_seed(seed: Any) -> int:
    """The seed as a non-negative int."""
    ok = isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0
    require(ok, f"The seed must be a non-negative integer, not {seed!r}.")
    return int(seed)


def as_cube(x: Any) -> np.ndarray:
    """``x`` as a float32 (C, H, W) array (a copy only where the dtype changes)."""
    cube = np.asarray(x, dtype=np.float32)
    require(cube.ndim == 3 and min(cube.shape) > 0,
             f"Expected a non-empty cube of shape (bands, rows, columns), got shape {cube.shape}.")
    return cube


def require(condition: bool, message: str) -> None:
    """Raise DampInputError(message) unless ``condition`` holds."""
    if not condition:
        raise DampInputError(message)
