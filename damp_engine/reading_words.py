"""The reading in people's terms: the severities of the present families in the raster's own
units (after band scale and offset, bands numbered from 1 as GIS software numbers them), the
evidence behind them, one sentence each, and the reading in one sentence."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .names import FAMILY_TITLES, METRIC_NAMES, METRIC_TITLES
from .reading_model import ReadingModel
from .severity_blur import FWHM_PER_SIGMA, blur_sigma, coarse_factor
from .survey import Survey

STRIPED = 1.5        # log10 of the stripe F ratio above which a band counts as striped
IMPULSE_BAND = 0.005  # share of spikes above which a band counts as hit by impulse noise


def band_list(numbers: Iterable[int], limit: int = 12) -> str:
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


def severities(s: Survey, factor: float, model: ReadingModel, present: set[str]) -> tuple[dict, list[str]]:
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
        raw = float(np.mean(blur_sigma(s.rho)))
        slope, offset = model.blur_calibration
        psf = max(slope * raw + offset, 0.0) if raw > 0 else 0.0
        sev["blur_width_px"] = psf * FWHM_PER_SIGMA
        strongest = int(np.nanargmax(s.rho)) if np.isfinite(s.rho).any() else 0
        direction = ("along rows", "along columns", "along the diagonal", "along the anti-diagonal")[strongest]
        notes.append(f"neighbouring differences correlate (ρ = {', '.join(f'{r:.2f}' for r in s.rho)} along x, y "
                     f"and the diagonals; strongest {direction}): a point spreads over about "
                     f"{sev['blur_width_px']:.1f} px (FWHM)")
    factor_found = coarse_factor(s.replication)
    if "coarse_resolution" in present or factor_found > 1:
        sev["coarse_factor"] = factor_found
        if factor_found > 1:
            notes.append(f"pixels are copies of {factor_found} × {factor_found} blocks (differences inside blocks "
                         f"are {100 * s.replication[factor_found]:.2g} % of those across): coarse pixels on a "
                         "finer grid")
    if "missing_pixels" in present or s.missing_fraction > 0.01:
        sev["missing_fraction"] = s.missing_fraction
        notes.append(f"{100 * s.missing_fraction:.3g} % of the sampled pixels hold no data (zero spectra or nodata)")
    lost = number[s.lost]
    if "lost_bands" in present or lost.size:
        sev["lost_bands"] = [int(b) for b in lost]
        if lost.size:
            notes.append(f"{lost.size} of {s.bands.size} bands are constant (lost): {band_list(lost)}")
    if "stripes" in present:
        direction, score = s.stripe_scores()
        striped = number[np.isfinite(score) & (score > STRIPED)]
        sev["striped_bands"] = [int(b) for b in striped]
        sev["stripe_direction"] = direction
        lines = "column" if direction == "vertical" else "row"
        notes.append(f"{striped.size} band(s) have {lines} offsets that neighbouring bands do not share (line means "
                     f"vary over {10 ** STRIPED:.0f} times what their noise explains): {band_list(striped)}")
    if "dead_lines" in present:
        share = np.maximum(s.dead_cols, s.dead_rows)
        dead = number[np.nan_to_num(share) > 0]
        columns = np.nansum(s.dead_cols) >= np.nansum(s.dead_rows)
        sev["dead_line_bands"] = [int(b) for b in dead]
        sev["dead_line_direction"] = "columns" if columns else "rows"
        notes.append(f"{dead.size} band(s) have whole {'columns' if columns else 'rows'} at exactly 0 where the "
                     f"scene has signal: {band_list(dead)}")
    if "impulse_noise" in present:
        hit = np.nan_to_num(s.impulse) > IMPULSE_BAND
        sev["impulse_fraction"] = float(np.nanmean(s.impulse)) if (~s.lost).any() else 0.0
        sev["impulse_bands"] = [int(b) for b in number[hit]]
        notes.append(f"{100 * sev['impulse_fraction']:.2g} % of samples are isolated spikes above or below all 8 "
                     f"neighbours, in {int(hit.sum())} band(s)")
    if s.no_data_bands.any():
        sev["no_data_bands"] = [int(b) + 1 for b in np.flatnonzero(s.no_data_bands)]
        notes.append(f"{int(s.no_data_bands.sum())} band(s) hold no valid data and were left out: "
                     f"{band_list(sev['no_data_bands'])}")
    return sev, notes


def metric_evidence(metrics: Mapping[str, float], clean: Mapping[str, tuple[float, float]]) -> list[str]:
    """One line per prompt metric outside its clean range, with its value and the range."""
    lines = []
    for name in METRIC_NAMES:
        value = metrics[name]
        low, high = clean[name]
        if low <= value <= high:
            continue
        side = "above" if value > high else "below"
        lines.append(f"{METRIC_TITLES[name]} ({name.upper()}) {value:.3g} is {side} the clean range "
                     f"{low:.3g}–{high:.3g}")
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
        return f", band{'s' if len(sev['lost_bands']) > 1 else ''} {band_list(sev['lost_bands'], 6)}"
    if family == "stripes" and "stripe_direction" in sev:
        return f", {sev['stripe_direction']}, in {len(sev['striped_bands'])} band(s)"
    if family == "dead_lines" and "dead_line_bands" in sev:
        return f", dead {sev['dead_line_direction']} in {len(sev['dead_line_bands'])} band(s)"
    if family == "impulse_noise" and "impulse_fraction" in sev:
        return f", {100 * sev['impulse_fraction']:.2g} % of samples"
    return ""


def sentence(probabilities: Mapping[str, float], top: str, present: list[str], sev: Mapping[str, Any]) -> str:
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
