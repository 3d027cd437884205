"""Streaming tiled inference: restore or super-resolve rasters of any size (DESIGN §5, §4a).

A raster is never held whole. First the scene is analysed once (`damp_engine.scene_analysis`):
the robust scaling factor, the bands without data, the scene's degradation prompt and its
spectral basis, all from a fixed grid of sample windows. Then tiles are read block-wise with a
halo of context (`damp_engine.tilegrid`), given their validity mask (`damp_engine.validity`),
restored in the scene's subspace (`damp_engine.restoration`, batched on the device by
`damp_engine.inference`), cropped back to the tile and written at once. Peak memory depends on
the tile and batch sizes (and GDAL's block cache, capped by GDAL_CACHEMAX), not on the raster.

Halos are cropped, not blended. Read windows are aligned to the network's attention windows
and down-sampling cells, and nothing in the restoration pools over a whole tile (the basis,
the shrinkage thresholds and the prompt that routes the experts are the scene's; the network's
poolings are local), so a tile's centre is computed as in a whole-image pass as long as the
halo covers the receptive field. ``prompt_scope="tile"`` routes each tile by its own prompt
instead, for scenes whose degradation varies across them (tiles may then show seams).

Missing samples are facts (DESIGN §4a.1): nodata and NaN samples, zero spectra, dead lines,
bands without data and the user's `bad_bands` are left out of every fit and get values from the
basis and the other bands; the non-zero pixels of an optional mask raster are filled the same
way. Pixels nodata in every band (and not masked) stay nodata, and so do bands that are nodata
everywhere (e.g. absorption bands a provider blanked); bands that are zero everywhere or marked
bad are regenerated.
"""
from __future__ import annotations

import math
import os
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .checkpoint import LoadedModel, ModelArg, as_loaded_model
from .coarse import Blocks, back_projection_radius, interpolate_blocks
from .deblur import deconvolution_radius
from .errors import DampCancelled, DampInputError
from .inference import Backoff, NetworkRunner, OutOfMemoryError
from .limits import DEFAULT_BATCH, DEFAULT_HALO, DEFAULT_TILE, MIN_TILE, batch_for, halo_problem
from .raster import RasterInfo, RasterReader, check_output_path
from .report import RestoreReport, RunStats
from .scene_analysis import SceneAnalysis, analyse_scene, prompt_input
from .tile_outputs import TileOutputs, output_format
from .tilegrid import TileGrid, Window
from .validity import validity_mask

MIN_PROMPT_SIZE = 8    # the degradation prompt needs at least 8 x 8 pixels
LOOKAHEAD = 64         # queued tiles searched for batch mates of the same shape
PROMPT_SCOPES = ("scene", "tile")

Progress = Callable[[float], None] | None
Cancelled = Callable[[], bool] | None
Log = Callable[[str], None] | None


def parse_bad_bands(bad_bands: Sequence[int] | None, bands: int) -> np.ndarray:
    """(bands,) bool from 1-based band numbers; DampInputError for a band that does not exist."""
    bad = np.zeros(bands, bool)
    for number in bad_bands or ():
        if not 1 <= int(number) <= bands:
            raise DampInputError(f"Bad band {number} does not exist; the raster has bands 1 to {bands}.")
        bad[int(number) - 1] = True
    return bad


def replicate(a: np.ndarray, factor: int) -> np.ndarray:
    """Pixel-replicate the last two axes `factor` times (how the training's SR task presents inputs)."""
    return a if factor == 1 else a.repeat(factor, axis=-2).repeat(factor, axis=-1)


@dataclass
class ReadTile:
    """One tile read and prepared on the network grid: scaled cube x (C, H, W), its validity
    (C, H, W) and the void pixels of the output tile (h·f, w·f) that stay nodata."""

    window: Window
    x: np.ndarray
    valid: np.ndarray
    void: np.ndarray
    void_read: np.ndarray

    @property
    def empty(self) -> bool:
        """True when no pixel of the tile will hold data (nothing for the network to do)."""
        return bool(self.void.all())


def _batch(arrays: list[np.ndarray]) -> np.ndarray:
    """The arrays stacked along a new first axis; a view of a lone array (a CPU run's batch of one
    tile) rather than a copy of its hundreds of megabytes."""
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)


class TiledRun:
    """One streaming pass over a raster: read, restore in the scene's subspace, write, tile by tile.

    runner None writes only the prompt map (no network).
    """

    def __init__(self, reader: RasterReader, mask: RasterReader | None, analysis: SceneAnalysis,
                 factor: int, grid: TileGrid, outputs: TileOutputs, runner: NetworkRunner | None,
                 backoff: Backoff, stats: RunStats, blocks: int, prompt_scope: str = "scene"):
        self.reader, self.mask, self.analysis = reader, mask, analysis
        self.factor, self.grid, self.outputs, self.runner = factor, grid, outputs, runner
        self.backoff, self.stats, self.blocks = backoff, stats, blocks
        self.prompt_scope = prompt_scope

    def run(self, progress: Progress, cancelled: Cancelled) -> None:
        """Process every tile; an out-of-memory error re-queues the batch with a smaller batch or tile."""
        queue = deque(self.grid.windows(self.backoff.tile))
        total, done = self.grid.width * self.grid.height, 0
        while queue:
            group = _take_batch(queue, self.backoff.batch)
            if not self._attempt(group, cancelled):
                self.runner.release_memory()
                queue.extendleft(reversed(group))
                if self.backoff.shrink(len(group)) == "tile":
                    queue = deque(part for w in queue for part in self.grid.split(w, self.backoff.tile))
                continue
            for window in group:
                done += window.area
                if progress is not None:
                    progress(done / total)

    def _attempt(self, group: list[Window], cancelled: Cancelled) -> bool:
        """Process a batch; False if the device ran out of memory (then nothing was written).

        Returning, rather than handling the error inside `except`, drops the traceback and with
        it the batch's tensors, so that the GPU memory can be released before the retry.
        """
        try:
            self._process([self._read(w, cancelled) for w in group])
        except OutOfMemoryError:
            return False
        return True

    def _read(self, window: Window, cancelled: Cancelled) -> ReadTile:
        """Read and prepare one tile, after checking that the caller has not cancelled."""
        if cancelled is not None and cancelled():
            raise DampCancelled("Cancelled; no output was written.")
        with self.stats.timed("read"):
            data, valid = self.reader.read(window.rx, window.ry, window.rw, window.rh)
            fill = None
            if self.mask is not None:
                fill = self.mask.read(window.rx, window.ry, window.rw, window.rh)[0][0] != 0
            x = np.divide(data, np.float32(self.analysis.scaling.factor), out=data)
            ok, void = validity_mask(x, valid, self.analysis.lost, fill)
            np.copyto(x, np.float32(0.0), where=~ok)
            rows, cols = window.crop()
            f = self.factor
            x = replicate(x, f)
            blocks = Blocks(f, (0, 0)) if f > 1 else self.analysis.blocks
            if blocks is not None:
                x = interpolate_blocks(torch.from_numpy(x)[None], blocks, (window.ry * f, window.rx * f))[0].numpy()
            return ReadTile(window, x, replicate(ok, f), replicate(void[rows, cols], f), void)

    def _process(self, tiles: list[ReadTile]) -> None:
        """Prompt and restore the non-empty tiles of a batch, then write every tile."""
        busy = [t for t in tiles if not t.empty]
        results = iter(self._infer(busy))
        with self.stats.timed("write"):
            for tile in tiles:
                self._write(tile, *((None, None, None) if tile.empty else next(results)))

    def _tile_prompts(self, tiles: list[ReadTile]) -> np.ndarray:
        """(B, 6) each tile's own prompt, measured as the scene's is (on its read window)."""
        from .prompt import compute_prompt

        cubes = [prompt_input(t.x[:, ::self.factor, ::self.factor], t.valid[:, ::self.factor, ::self.factor],
                              t.void_read) for t in tiles]
        return np.stack([compute_prompt(c).values[0].numpy() for c in cubes])

    def _infer(self, tiles: list[ReadTile]) -> list[tuple]:
        """(prompt, restored or None, gates or None) for each tile of the batch."""
        if not tiles:
            return []
        wants_prompts = self.outputs.prompt is not None or self.prompt_scope == "tile"
        with self.stats.timed("prompt"):
            prompts = self._tile_prompts(tiles) if wants_prompts else [None] * len(tiles)
        if self.runner is None:
            return [(p, None, None) for p in prompts]
        routing = np.stack(prompts) if self.prompt_scope == "tile" else \
            np.repeat(self.analysis.prompt[None], len(tiles), axis=0)
        with self.stats.timed("network"):
            restored, gates = self.runner.restore(self.analysis.basis, _batch([t.x for t in tiles]),
                                                  _batch([t.valid for t in tiles]), routing,
                                                  self.analysis.complement_share,
                                                  self.analysis.keep_valid and self.factor == 1,
                                                  self.analysis.blur if self.factor == 1 else 0.0,
                                                  self.analysis.nodata_bands)
        return list(zip(prompts, restored, gates))

    def _write(self, tile: ReadTile, prompt, restored, gates) -> None:
        window = tile.window
        physical = None
        if restored is not None:
            rows, cols = window.crop(self.factor)
            physical = restored[:, rows, cols] * np.float32(self.analysis.scaling.factor)
            physical[self.analysis.nodata_bands] = np.nan
            physical[:, tile.void] = np.nan
        self.outputs.write_cube(window, physical)
        self.outputs.write_maps(window, prompt, gates, self.blocks)
        self.stats.add_tile(prompt, gates, window.area)


def _take_batch(queue: deque, size: int) -> list[Window]:
    """Pop the first window and up to `size` - 1 more of the same read shape from the next LOOKAHEAD.

    Looking ahead lets the narrower tiles at the raster's right edge batch with each other
    instead of each running alone.
    """
    group = [queue.popleft()]
    index = 0
    while len(group) < size and index < min(len(queue), LOOKAHEAD):
        if queue[index].read_shape == group[0].read_shape:
            group.append(queue[index])
            del queue[index]
        else:
            index += 1
    return group


def _check_settings(tile: int, halo: int, batch: int | None, prompt_scope: str = "scene") -> None:
    if tile < MIN_TILE:
        raise DampInputError(f"The tile size must be at least {MIN_TILE} pixels, not {tile}.")
    if halo_problem(halo):
        raise DampInputError(halo_problem(halo))
    if batch is not None and batch < 1:
        raise DampInputError(f"The batch must be at least 1 tile, not {batch}.")
    if prompt_scope not in PROMPT_SCOPES:
        raise DampInputError(f"The prompt scope must be one of {', '.join(PROMPT_SCOPES)}, not {prompt_scope!r}.")


def _check_size(info: RasterInfo, factor: int) -> None:
    if min(info.width, info.height) * factor < MIN_PROMPT_SIZE:
        raise DampInputError(f"{info.path} is {info.width} x {info.height} pixels; DAMP needs at least "
                             f"{MIN_PROMPT_SIZE} x {MIN_PROMPT_SIZE} pixels on the grid it restores.")


def _check_outputs(src, mask, outputs: Sequence, report) -> tuple[list[Path | None], Path | None]:
    """Resolved output raster paths and report path, checked before any work starts; DampInputError
    if one would overwrite an input or another output, is a folder or a file that is not a raster
    (the report: not a regular file), or lies in a missing or unwritable folder."""
    from .outputs import check_output_file

    paths = [None if p is None else check_output_path(p, src, mask) for p in outputs]
    report_path = None if report is None else check_output_file(report, "report", (src, mask))
    given = [p for p in (*paths, report_path) if p is not None]
    inputs = {Path(p).expanduser().resolve() for p in (src, mask) if p is not None}
    if len(set(given)) < len(given) or inputs & set(given):
        raise DampInputError("The output raster, the maps and the report need different paths, none of them "
                             "an input; choose distinct file names.")
    return paths, report_path


def _open_mask(mask: str | os.PathLike | None, info: RasterInfo, stack: ExitStack) -> RasterReader | None:
    """The mask raster (non-zero = fill), checked to lie on the input's grid."""
    if mask is None:
        return None
    reader = stack.enter_context(RasterReader(mask))
    if (reader.info.width, reader.info.height) != (info.width, info.height):
        raise DampInputError(f"The mask {mask} is {reader.info.width} x {reader.info.height} pixels but the "
                             f"raster is {info.width} x {info.height}; give a mask on the raster's grid.")
    return reader


def _run(src, dst, *, factor: int, model: ModelArg, tile: int, halo: int, batch: int | None, device: str,
         mask=None, bad_bands=None, report=None, routing_map=None, prompt_map=None, prompt_scope: str = "scene",
         progress: Progress = None, cancelled: Cancelled = None, log: Log = None) -> RestoreReport:
    """The shared body of restore_raster, upscale_raster and routing_raster."""
    _check_settings(tile, halo, batch, prompt_scope)
    paths, report_path = _check_outputs(src, mask, (dst, routing_map, prompt_map), report)
    from .raster import open_raster

    open_raster(src, min_bands=3)  # the input opens as a raster with enough bands, before the model loads
    loaded = as_loaded_model(model, device)
    net = loaded.net
    stats = RunStats()
    from .outputs import OutputGroup

    with ExitStack() as stack:
        group = stack.enter_context(OutputGroup())  # every output is moved into place together, at the end
        reader = stack.enter_context(RasterReader(src, min_bands=3))
        info = reader.info
        _check_size(info, factor)
        mask_reader = _open_mask(mask, info, stack)
        bad = parse_bad_bands(bad_bands, info.bands)
        with stats.timed("analysis"):
            analysis = analyse_scene(reader, bad, mask_reader)
        multiple = net.preset.size_multiple
        align = multiple // math.gcd(multiple, factor)
        if analysis.blur and factor == 1:
            halo += deconvolution_radius(analysis.blur)  # the deconvolution reads its own context
            if log is not None:
                log(f"Blur of σ = {analysis.blur:.2f} px found; deconvolving, tiles overlap by {halo} px.")
        coarse = factor if factor > 1 else analysis.blocks and analysis.blocks.factor
        if coarse:
            halo += back_projection_radius(coarse)  # so does the back-projection of coarse pixels
        grid = TileGrid(info.width, info.height, halo=-(-halo // factor), align=align,
                        min_read=-(-multiple // factor))
        outputs = TileOutputs(group, info, factor, output_format(info), net.block_names, *paths, loaded.name)
        backoff = Backoff(batch_for(batch, loaded.device.type), max(1, tile // factor), max(1, MIN_TILE // factor), log)
        if log is not None:
            log(f"Restoring {info.width} x {info.height} px, {info.bands} bands, on {loaded.device} with "
                f"{loaded.name}: {analysis.basis.rank} spectral components, "
                f"{int(analysis.lost.sum() - analysis.nodata_bands.sum())} band(s) to regenerate.")
        run = TiledRun(reader, mask_reader, analysis, factor, grid, outputs, NetworkRunner(loaded),
                       backoff, stats, len(net.block_names), prompt_scope)
        run.run(progress, cancelled)
        with stats.timed("write"):
            outputs.finish()
        result = _build_report(stats, loaded, info, factor, backoff, halo, analysis, paths, report_path)
        if report_path is not None:
            group.add_json(report_path, result.to_dict())
    return result


def _build_report(stats: RunStats, loaded: LoadedModel, info: RasterInfo, factor: int, backoff: Backoff,
                  halo: int, analysis: SceneAnalysis, paths: list[Path | None],
                  report_path: Path | None) -> RestoreReport:
    """The RestoreReport of a finished run."""
    net = loaded.net
    return RestoreReport(
        output=paths[0], device=str(loaded.device), model=loaded.name, tiles=stats.tiles,
        bands=info.bands, width=info.width * factor, height=info.height * factor,
        tile=backoff.tile * factor, halo=halo, batch=backoff.batch,
        seconds=stats.total_seconds(), prompt=stats.prompt_summary(),
        routing=stats.routing_summary(net.block_names), spatial_share=_spatial_shares(net),
        scale_factor=analysis.scaling.factor, events=backoff.events, scene=analysis.to_dict(),
        routing_map=paths[1], prompt_map=paths[2], report=report_path)


def _spatial_shares(net) -> dict[str, list[float]]:
    """{block: λ_s per expert}."""
    shares = net.spatial_shares().detach().float().cpu().numpy()
    return {name: [round(float(v), 6) for v in shares[i]] for i, name in enumerate(net.block_names)}


def restore_raster(src: str | os.PathLike, dst: str | os.PathLike, *, model: ModelArg = None,
                   tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO, batch: int | None = DEFAULT_BATCH,
                   device: str = "auto", mask: str | os.PathLike | None = None,
                   bad_bands: Sequence[int] | None = None, report: str | os.PathLike | None = None,
                   routing_map: str | os.PathLike | None = None, prompt_map: str | os.PathLike | None = None,
                   prompt_scope: str = "scene", progress: Progress = None, cancelled: Cancelled = None,
                   log: Log = None) -> RestoreReport:
    """Restore a hyperspectral raster tile by tile and write it to `dst` (GeoTIFF or ENVI).

    model:        None (the bundled model), a .safetensors path, or a LoadedModel (used as is,
                  on its own device; load it once and pass it to run many rasters).
    tile, halo:   output tile side and the context read around it, in pixels.
    batch:        tiles per forward pass (None: 4 on a GPU, 1 on the CPU; `limits.batch_for`).
    device:       "auto", "cpu" or "cuda" (where a path or the bundled model is loaded).
    mask:         raster on the input grid whose non-zero pixels are filled (inpainted).
    bad_bands:    1-based band numbers to regenerate (their values are ignored).
    report:       path of a JSON copy of the returned report.
    routing_map:  raster of each tile's dominant expert per decoder DAMoE block (1..E, 0 = none).
    prompt_map:   six-band raster of each tile's degradation prompt.
    prompt_scope: "scene" (default): every tile is routed by the scene's prompt; "tile": by its own.
    progress:     called with the fraction done after every tile.
    cancelled:    polled between batches; returning True raises DampCancelled and writes nothing.
    log:          called with one-line messages (settings, out-of-memory back-offs).

    The output has the input's data type for integer inputs (rounded and clipped, with the
    input's band scale/offset) and float32 otherwise; nodata, georeferencing, band names and
    wavelengths are kept. See the module docstring for gaps, masks and bad bands.
    """
    return _run(src, dst, factor=1, model=model, tile=tile, halo=halo, batch=batch, device=device, mask=mask,
                bad_bands=bad_bands, report=report, routing_map=routing_map, prompt_map=prompt_map,
                prompt_scope=prompt_scope, progress=progress, cancelled=cancelled, log=log)


def upscale_raster(src: str | os.PathLike, dst: str | os.PathLike, factor: int, **options) -> RestoreReport:
    """Super-resolve a raster `factor` times (same extent, pixels `factor` times smaller) and restore it.

    Each tile is pixel-replicated onto the fine grid, as the training's super-resolution task
    presents its inputs, and restored there. `tile` and `halo` are in fine-grid pixels; the
    routing and prompt maps lie on the input grid. Other options as for `restore_raster`.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or not 2 <= factor <= 8:
        raise DampInputError(f"The upscaling factor must be a whole number from 2 to 8, not {factor!r}.")
    defaults = {"model": None, "tile": DEFAULT_TILE, "halo": DEFAULT_HALO, "batch": DEFAULT_BATCH, "device": "auto"}
    return _run(src, dst, factor=int(factor), **{**defaults, **options})


def routing_raster(src: str | os.PathLike, dst: str | os.PathLike, *, model: ModelArg = None,
                   tile: int = DEFAULT_TILE, halo: int = DEFAULT_HALO, device: str = "auto",
                   prompt_scope: str = "scene", progress: Progress = None, cancelled: Cancelled = None,
                   log: Log = None) -> RestoreReport:
    """Run the network over the raster and write only the routing map (one band per decoder DAMoE block)."""
    return _run(src, None, factor=1, model=model, tile=tile, halo=halo, batch=DEFAULT_BATCH, device=device,
                routing_map=dst, prompt_scope=prompt_scope, progress=progress, cancelled=cancelled, log=log)


def prompt_map_raster(src: str | os.PathLike, dst: str | os.PathLike, *, tile: int = DEFAULT_TILE,
                      progress: Progress = None, cancelled: Cancelled = None) -> Path:
    """Write a six-band raster holding each tile's degradation prompt over the tile's area (no network).

    Tiles are presented as the restoration presents them (gaps zeroed, swath edges filled);
    a sliver tile at the raster's edge is measured on a window widened to 8 pixels.
    """
    if tile < MIN_PROMPT_SIZE:
        raise DampInputError(f"The tile size must be at least {MIN_PROMPT_SIZE} pixels, not {tile}.")
    out = _check_outputs(src, None, [dst], None)[0][0]
    stats = RunStats()
    with ExitStack() as stack:
        reader = stack.enter_context(RasterReader(src, min_bands=3))
        info = reader.info
        _check_size(info, 1)
        analysis = analyse_scene(reader)
        grid = TileGrid(info.width, info.height, halo=0, min_read=MIN_PROMPT_SIZE)
        outputs = TileOutputs(stack, info, 1, output_format(info), [], None, None, out, None)
        backoff = Backoff(1, tile, tile)
        TiledRun(reader, None, analysis, 1, grid, outputs, None, backoff, stats, 0).run(progress, cancelled)
    return out
