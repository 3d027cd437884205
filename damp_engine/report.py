"""What a tiled restoration run did: timings, the degradation prompt of its tiles, expert routing.

`RestoreReport` is returned by every raster-level restoration function (`damp_engine.tiling`),
printed by the CLI, shown in the QGIS log and optionally saved as JSON. `RunStats` collects the
per-tile numbers while the run streams and summarises them at the end, so the run never keeps
more than one small vector per tile.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .prompt import METRIC_NAMES

TIMING_KEYS = ("analysis", "read", "prompt", "network", "write")


@dataclass
class RestoreReport:
    """The record of one tiled run (restore, upscale or routing map).

    output:        the restored raster, or None when only maps were written.
    device:        where the network ran ("cpu", "cuda:0").
    model:         the model's name.
    tiles:         tiles processed (after any out-of-memory splitting).
    bands, width, height: the output raster's size.
    tile, halo, batch: the settings the run ended with (an out-of-memory back-off lowers them).
    seconds:       wall time per stage ("read", "prompt", "network", "write") and "total".
    prompt:        the tiles' own degradation prompts: {metric: {"mean", "min", "max"}}, measured
                   only when a prompt map or per-tile routing needs them ({} otherwise; the
                   prompt that routed the run is ``scene["scene_prompt"]``).
    routing:       mean gate per expert of every DAMoE block: {block: [g_1 .. g_E]}, averaged
                   over tiles weighted by their area.
    spatial_share: λ_s of every expert of every block: {block: [λ_1 .. λ_E]} (λ_c = 1 − λ_s).
    scale_factor:  the raster value that was mapped to 1 for the network.
    events:        notable things that happened (out-of-memory back-offs), in order.
    scene:         the scene analysis (`SceneAnalysis.to_dict`): the scene's prompt, the scale
                   factor, the spectral basis's rank, noise level and regenerated bands.
    """

    output: Path | None
    device: str
    model: str
    tiles: int
    bands: int
    width: int
    height: int
    tile: int
    halo: int
    batch: int
    seconds: dict[str, float]
    prompt: dict[str, dict[str, float]]
    routing: dict[str, list[float]]
    spatial_share: dict[str, list[float]]
    scale_factor: float
    events: list[str] = field(default_factory=list)
    routing_map: Path | None = None
    prompt_map: Path | None = None
    report: Path | None = None
    scene: dict = field(default_factory=dict)

    def dominant_experts(self) -> dict[str, int]:
        """The expert (1-based) with the largest mean gate in each block."""
        return {block: int(np.argmax(gates)) + 1 for block, gates in self.routing.items()}

    def summary(self) -> str:
        """One paragraph for a log: where it ran, how much, how long, and how it was routed."""
        s = self.seconds
        stages = ", ".join(f"{key} {s.get(key, 0.0):.1f} s" for key in TIMING_KEYS)
        experts = ", ".join(f"{block}: expert {e}" for block, e in self.dominant_experts().items())
        target = self.output or self.routing_map or self.prompt_map
        text = (f"Processed {self.tiles} tile(s) of up to {self.tile} px (halo {self.halo}, batch "
                f"{self.batch}) on {self.device} with model {self.model}: {self.bands} bands, "
                f"{self.width} x {self.height} px in {s.get('total', 0.0):.1f} s ({stages}).")
        if experts:
            text += f" Dominant experts: {experts}."
        if self.events:
            text += " " + " ".join(self.events)
        return text + (f" Wrote {target}." if target else "")

    def to_dict(self) -> dict:
        """JSON-ready dict (paths as strings)."""
        out = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(self).items()}
        out["scene_prompt"] = self.scene.get("scene_prompt")
        return out


class RunStats:
    """Accumulates stage timings and per-tile prompts and gates during a streaming run."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(TIMING_KEYS, 0.0)
        self._start = time.perf_counter()
        self._prompts: list[np.ndarray] = []
        self._gate_sum: np.ndarray | None = None
        self._area = 0.0
        self.tiles = 0

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the `with` body to `stage`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def add_tile(self, prompt: np.ndarray | None, gates: np.ndarray | None, area: int) -> None:
        """Record one tile: its six DP values, its gates (n_blocks, E) and its output area in pixels."""
        self.tiles += 1
        if prompt is not None:
            self._prompts.append(np.asarray(prompt, np.float64))
        if gates is not None:
            weighted = np.asarray(gates, np.float64) * area
            self._gate_sum = weighted if self._gate_sum is None else self._gate_sum + weighted
            self._area += area

    def total_seconds(self) -> dict[str, float]:
        """Stage timings plus "total", rounded to milliseconds."""
        out = {key: round(value, 3) for key, value in self.seconds.items()}
        out["total"] = round(time.perf_counter() - self._start, 3)
        return out

    def prompt_summary(self) -> dict[str, dict[str, float]]:
        """{metric: {"mean", "min", "max"}} over the recorded tiles (empty without any)."""
        if not self._prompts:
            return {}
        values = np.stack(self._prompts)
        return {name: {"mean": float(values[:, i].mean()), "min": float(values[:, i].min()),
                       "max": float(values[:, i].max())} for i, name in enumerate(METRIC_NAMES)}

    def routing_summary(self, block_names: list[str]) -> dict[str, list[float]]:
        """{block: area-weighted mean gate per expert} (empty when no tile went through the network)."""
        if self._gate_sum is None:
            return {}
        mean = self._gate_sum / self._area
        return {name: [round(float(g), 6) for g in mean[i]] for i, name in enumerate(block_names)}
