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

The reading of the degradation (one sentence, the family probabilities and the evidence) is
``damp_engine.reading.read_raster``'s for the same region: the reading ``damp prompt`` prints and
the *Degradation prompt* algorithm outputs.
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


@dataclass(frozen=True)
class Inspection:
    """What the dock shows for one layer or window.

    metrics:        the six DP metrics {name: value}, in ``METRIC_NAMES`` order.
    ranges:         {"clean"|"degraded": {name: (p05, p95)}} from the model card, or None.
    reading:        the reading of the degradation in one sentence (``degradation.sentence``).
    evidence:       the observations behind the reading, one sentence each.
    block_names:    the model's DAMoE blocks in execution order ("dec2.0", ...).
    gates:          n_blocks × E gate weights (after top-k), averaged over the windows read.
    spatial_share:  n_blocks × E spatial share λ_s of every expert (λ_c = 1 − λ_s).
    device:         where the model ran: "CUDA: <GPU name>" or "CPU".
    model:          the model's name (its card's "name", else its file's stem).
    windows:        the pixel windows (x0, y0, width, height) used (those at least half valid).
    bands:          the bands used (those holding valid data).
    degradation:    the whole reading (``damp_engine.reading.Reading``): family probabilities,
                    severities, sentence and evidence.
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
    degradation: Any = None


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
    from .reading import read_raster
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
    reading = read_raster(path, window, cancelled=cancelled)
    return Inspection(
        metrics=metrics, ranges=ranges, reading=reading.sentence, evidence=list(reading.evidence),
        degradation=reading,
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
