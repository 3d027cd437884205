"""Inspect a raster for the QGIS dock: its degradation prompt, a plain reading of it, and the routing.

``inspect_raster`` answers "what is wrong with this image, and what would the model do about
it?" for a whole raster (sampled) or one pixel window of it, in one call that a GUI can run in a
worker thread:

1. the region (the whole raster, or the given window) is analysed by
   ``damp_engine.scene_analysis.analyse_scene``, as ``damp restore`` and ``damp prompt`` analyse
   a scene: at **full resolution** (decimation would sharpen a blurred image and hide the very
   degradation we look for), on a fixed grid of sample windows, with the same scaling and
   validity mask; the prompt is the median of the windows' prompts;
2. the model's routers are evaluated on that prompt (``DAMP.route``): they see only the prompt,
   so this is exactly how a restoration of the region would route its experts.

``describe_prompt`` turns the metrics into one line of plain language with evidence, judged
against the ranges the model card records for clean and for degraded training crops.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from .errors import DampCancelled, DampInputError
from .raster import RasterReader

if TYPE_CHECKING:
    from .checkpoint import LoadedModel

Window = tuple[int, int, int, int]  # x0, y0, width, height in pixels
Range = tuple[float, float]         # (low, high): p05 and p95 of a metric
Ranges = dict[str, dict[str, Range]]  # {"clean": {metric: range}, "degraded": {metric: range}}

MIN_SIDE = 8  # the prompt needs at least 8 × 8 pixels

# Readings; each names the physical cause a user can act on (rules in ``describe_prompt``).
NOISE = "strong high-frequency noise, spectra rough: noise-like degradation"
BAND_LOSS = "spectral curvature spikes: lost or corrupted bands"
GAPS = "sharp spatial artefacts on smooth spectra: missing pixels, stripes or dead lines"
BLUR = "high frequencies missing: blur or low resolution"
CLEAN = "looks clean"
UNUSUAL = "no typical degradation pattern, but some metrics lie outside the clean range"
NO_RANGES = "no reference ranges in the model card: the metrics cannot be judged"
BAND_LOSS_SPREAD = 0.6  # SCS excess / SCM excess from which rough spectra read as band loss


@dataclass(frozen=True)
class Inspection:
    """What the dock shows for one layer or window.

    metrics:        the six DP metrics {name: value}, in ``METRIC_NAMES`` order.
    ranges:         {"clean"|"degraded": {name: (p05, p95)}} from the model card, or None.
    reading:        one-line plain-language reading of the metrics (``describe_prompt``).
    evidence:       the observations behind the reading, one sentence each.
    block_names:    the model's DAMoE blocks in execution order ("dec2.0", ...).
    gates:          n_blocks × E gate weights (after top-k), averaged over the windows read.
    spatial_share:  n_blocks × E spatial share λ_s of every expert (λ_c = 1 − λ_s).
    device:         where the model ran: "CUDA: <GPU name>" or "CPU".
    model:          the model's name (its card's "name", else its file's stem).
    windows:        the pixel windows (x0, y0, width, height) used (those at least half valid).
    bands:          the bands used (those holding valid data).
    """

    metrics: dict[str, float]
    ranges: Ranges | None
    reading: str
    evidence: list[str]
    block_names: list[str]
    gates: list[list[float]]
    spatial_share: list[list[float]]
    device: str
    model: str
    windows: list[Window] = field(default_factory=list)
    bands: int = 0


def inspect_raster(path: str | os.PathLike, window: Window | None = None,
                   model: LoadedModel | str | os.PathLike | None = None, device: str = "auto",
                   cancelled: Callable[[], bool] | None = None) -> Inspection:
    """Inspect the raster ``path``, whole or in the pixel ``window`` (x0, y0, w, h).

    The region is analysed as ``damp restore`` analyses a scene (`analyse_scene`: the same
    sample windows, scaling, validity and prompt), and the model's routers are asked how they
    route that prompt (`DAMP.route`: the routers see only the prompt, so this is the routing a
    restoration of the region would use). ``model`` is a loaded model, a model file, or None for
    the default model; ``device`` is used only when the model is loaded here. ``cancelled`` is
    polled between steps; when it returns True the call raises ``DampCancelled``. Raises
    ``DampInputError`` for a raster with fewer than 3 bands, a window outside the raster or
    under 8 × 8 pixels, or no part that is at least a quarter valid.
    """
    import torch

    from .checkpoint import as_loaded_model
    from .scene_analysis import analyse_scene

    def check() -> None:
        if cancelled is not None and cancelled():
            raise DampCancelled("The inspection was cancelled.")

    with RasterReader(path, min_bands=3) as reader:
        region = _region(reader.info.width, reader.info.height, window)
        analysis = analyse_scene(reader, region=region, cancelled=cancelled)
    metrics = analysis.prompt_dict()
    check()
    loaded = as_loaded_model(model, device)
    trace = loaded.net.route(torch.as_tensor(analysis.prompt[None], device=loaded.device))
    ranges = card_ranges(loaded.card)
    reading, evidence = describe_prompt(metrics, ranges)
    return Inspection(
        metrics=metrics, ranges=ranges, reading=reading, evidence=evidence,
        block_names=list(trace.block_names), gates=trace.mean_gates().double().cpu().tolist(),
        spatial_share=trace.spatial_share.double().cpu().tolist(), device=device_label(loaded.device),
        model=loaded.name, windows=list(analysis.windows), bands=int((~analysis.lost).sum()),
    )


def _region(width: int, height: int, window: Window | None) -> Window:
    """The pixel window to inspect: ``window`` clipped to the raster, or the whole raster."""
    if window is None:
        return (0, 0, width, height)
    x0, y0, w, h = (int(v) for v in window)
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + w, width), min(y0 + h, height)
    if xb <= xa or yb <= ya:
        raise DampInputError(f"The window {window} lies outside the {width} × {height} raster; "
                             "pan to the layer.")
    if min(xb - xa, yb - ya) < MIN_SIDE:
        raise DampInputError(f"The visible part of the layer is {xb - xa} × {yb - ya} pixels; the "
                             f"degradation prompt needs at least {MIN_SIDE} × {MIN_SIDE}. Zoom out.")
    return (xa, ya, xb - xa, yb - ya)


def device_label(device: Any) -> str:
    """"CUDA: <GPU name>" for a CUDA device, else "CPU"."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return "CPU"


def card_ranges(card: Mapping[str, Any]) -> Ranges | None:
    """The card's "prompt_ranges" as {"clean"|"degraded": {metric: (low, high)}}, or None.

    None when the card has no ranges (a model that was never trained on data) or when they do
    not cover all six metrics for both kinds of data.
    """
    from .prompt import METRIC_NAMES

    raw = card.get("prompt_ranges")
    try:
        return {kind: {name: (float(raw[kind][name][0]), float(raw[kind][name][1]))
                       for name in METRIC_NAMES}
                for kind in ("clean", "degraded")}
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def describe_prompt(metrics: Mapping[str, float], ranges: Ranges | None) -> tuple[str, list[str]]:
    """A plain-language reading of the DP metrics, and the evidence for it.

    Each metric is judged against its clean range (low, high) from ``ranges["clean"]``: *above*
    means value > high, *below* means value < low; the *excess* of a metric above its range is
    value / high. The first rule that holds gives the reading:

    =========  ===========================================  =====================================
    reading    rule                                         why
    =========  ===========================================  =====================================
    band loss  SCM above, SCS above, and the excess of SCS  zeroed or spiky bands put a few sharp
               at least BAND_LOSS_SPREAD (0.6) × the        kinks in every spectrum, large in
               excess of SCM                                bright pixels and small in dark ones,
                                                            so the spread of spectral roughness
                                                            (SCS) grows about as fast as its mean
    noise      SCM above (otherwise)                        noise makes every spectrum about as
                                                            rough as the next: SCM grows much
                                                            faster than SCS
    gaps       HFER above or SCC below                      missing pixels, stripes and dead lines
                                                            add spatial edges but leave spectra
                                                            smooth
    blur       HFER below                                   blur and coarse pixels remove fine
                                                            detail and keep neighbours alike
    =========  ===========================================  =====================================

    Known limits: signal-dependent (Poisson) noise also roughens bright pixels more than dark
    ones and can read as band loss; stripes and pixel-replicated down-sampling hardly move the
    metrics and may read as clean. A naturally smooth scene can read as blurred.

    When no rule holds, the reading is "looks clean" if all six metrics lie inside their clean
    ranges, else a note that some lie outside. Without ranges (a card that has none), the
    reading says so and the evidence is empty. The evidence lists every metric outside its
    clean range, with its value and the range. (The degraded ranges span nearly everything
    from blur to strong noise, so they are shown in the dock's bars but not used here.)
    """
    if ranges is None:
        return NO_RANGES, []
    from .prompt import METRIC_TITLES

    clean = ranges["clean"]
    side = {name: _side(value, clean[name]) for name, value in metrics.items()}
    above = {name for name, s in side.items() if s == "above"}
    below = {name for name, s in side.items() if s == "below"}
    reading = None
    if "scm" in above:
        spiky = "scs" in above and (_excess(metrics["scs"], clean["scs"])
                                    >= BAND_LOSS_SPREAD * _excess(metrics["scm"], clean["scm"]))
        reading = BAND_LOSS if spiky else NOISE
    elif "hfer" in above or "scc" in below:
        reading = GAPS
    elif "hfer" in below:
        reading = BLUR
    evidence = []
    for name, value in metrics.items():
        if side[name] == "inside":
            continue
        low, high = clean[name]
        evidence.append(f"{METRIC_TITLES[name]} ({name.upper()}) {value:.3g} is {side[name]} the clean "
                        f"range {low:.3g}–{high:.3g}")
    if reading is not None:
        return reading, evidence
    if evidence:
        return UNUSUAL, evidence
    return CLEAN, ["all six metrics lie inside their clean ranges"]


def _excess(value: float, clean: Range) -> float:
    """How far ``value`` lies above a clean range, as a multiple of its upper end."""
    return value / max(clean[1], 1e-12)


def _side(value: float, clean: Range) -> str:
    """Where ``value`` lies against a clean range: "below", "inside" or "above"."""
    low, high = clean
    if value > high:
        return "above"
    if value < low:
        return "below"
    return "inside"
