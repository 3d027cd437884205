"""What a tiled run writes (DESIGN §5): the restored cube in the input's data type and metadata,
the routing map and the prompt map, each written tile by tile."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .names import METRIC_NAMES, METRIC_TITLES
from .raster import RasterInfo, RasterWriter
from .tilegrid import Window

ROUTING_NODATA = 0


@dataclass(frozen=True)
class OutputFormat:
    """How restored physical values are stored: data type, nodata and the input's scale/offset."""

    dtype: np.dtype
    nodata: float | None
    scales: np.ndarray
    offsets: np.ndarray

    def encode(self, physical: np.ndarray) -> np.ndarray:
        """(bands, h, w) physical values, NaN where nodata, -> stored values of the output type."""
        stored = physical - self.offsets[:, None, None]
        stored /= self.scales[:, None, None]
        gap = np.isnan(stored)
        if np.issubdtype(self.dtype, np.integer):  # in place: a 224-band tile is hundreds of megabytes
            limits = np.iinfo(self.dtype)
            np.nan_to_num(stored, copy=False)
            np.rint(stored, out=stored)
            np.clip(stored, limits.min, limits.max, out=stored)
        stored = stored.astype(self.dtype, copy=False)
        if self.nodata is not None and not np.isnan(self.nodata):
            stored[~gap & (stored == np.asarray(self.nodata).astype(self.dtype))] = self._next_to_nodata()
        stored[gap] = self.nodata if self.nodata is not None else 0
        return stored

    def _next_to_nodata(self):
        """A valid value next to nodata, for restored values that would otherwise read as nodata."""
        if np.issubdtype(self.dtype, np.integer):
            return self.nodata + 1 if self.nodata < np.iinfo(self.dtype).max else self.nodata - 1
        return np.nextafter(self.dtype.type(self.nodata), self.dtype.type(np.inf))


def output_format(info: RasterInfo) -> OutputFormat:
    """Integer inputs keep their type; float inputs are written as float32 (nodata NaN if none is set)."""
    dtype = np.dtype(info.dtype if info.is_integer else "float32")
    nodata = info.nodata if info.nodata is not None or info.is_integer else float("nan")
    return OutputFormat(dtype, nodata, np.asarray(info.scales, np.float32), np.asarray(info.offsets, np.float32))



class TileOutputs:
    """The rasters a run writes tile by tile: restored cube, routing map and prompt map (each optional).

    Every one is a RasterWriter entered on `stack`, so leaving the stack with an exception (a
    cancel, an error) deletes them all and leaves existing files untouched.
    """

    def __init__(self, stack, info: RasterInfo, factor: int, fmt: OutputFormat,
                 block_names: Sequence[str], output: Path | None, routing_map: Path | None,
                 prompt_map: Path | None, model_name: str | None):
        self.factor, self.fmt, self.bands = factor, fmt, info.bands
        self.cube = self.routing = self.prompt = None
        if output is not None:
            self.cube = stack.enter_context(_cube_writer(output, info, factor, fmt, model_name))
        map_like = replace(info, band_names=(), wavelengths=None, metadata={})
        if routing_map is not None:
            self.routing = stack.enter_context(RasterWriter(
                routing_map, map_like, bands=len(block_names), dtype="uint8", nodata=ROUTING_NODATA,
                band_names=[f"{name}: dominant expert" for name in block_names]))
        if prompt_map is not None:
            self.prompt = stack.enter_context(RasterWriter(
                prompt_map, map_like, bands=len(METRIC_NAMES), dtype="float32", nodata=float("nan"),
                band_names=[f"{name.upper()}: {METRIC_TITLES[name]}" for name in METRIC_NAMES]))

    def finish(self) -> None:
        """Flush every output to its temporary file (compressing the blocks GDAL still caches), so that
        the run's timings include it; moving the files into place is left to the output group."""
        for writer in (self.cube, self.routing, self.prompt):
            if writer is not None:
                writer.finish()

    def write_cube(self, window: Window, physical: np.ndarray | None) -> None:
        """Write one tile: (bands, h·f, w·f) physical values, NaN where nodata; None for an all-nodata tile."""
        if self.cube is None:
            return
        f = self.factor
        if physical is None:
            physical = np.full((self.bands, window.h * f, window.w * f), np.nan, np.float32)
        self.cube.write(self.fmt.encode(physical), window.x0 * f, window.y0 * f)

    def write_maps(self, window: Window, prompt: np.ndarray | None, gates: np.ndarray | None, blocks: int) -> None:
        """Paint one tile's dominant experts (1..E, 0 = none) and its six DP values over its area."""
        shape = (window.h, window.w)
        if self.routing is not None:
            experts = np.zeros(blocks, np.uint8) if gates is None else gates.argmax(axis=-1).astype(np.uint8) + 1
            self.routing.write(np.broadcast_to(experts[:, None, None], (blocks, *shape)), window.x0, window.y0)
        if self.prompt is not None:
            values = np.full(len(METRIC_NAMES), np.nan, np.float32) if prompt is None else prompt
            self.prompt.write(np.broadcast_to(values[:, None, None], (len(values), *shape)), window.x0, window.y0)


def _cube_writer(path: Path, info: RasterInfo, factor: int, fmt: OutputFormat, model_name: str | None) -> RasterWriter:
    """The writer of the restored cube: the input's bands, metadata and georeferencing, `factor` times finer."""
    gt = info.geotransform
    geotransform = (gt[0], gt[1] / factor, gt[2] / factor, gt[3], gt[4] / factor, gt[5] / factor)
    metadata = {**info.metadata, "DAMP_MODEL": model_name or ""}
    if factor > 1:
        metadata["DAMP_UPSCALE_FACTOR"] = str(factor)
    return RasterWriter(path, info, dtype=fmt.dtype.name, width=info.width * factor, height=info.height * factor,
                        geotransform=geotransform, nodata=fmt.nodata, scales=info.scales, offsets=info.offsets,
                        metadata=metadata)
