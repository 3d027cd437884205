"""Whole-raster operations on files: the degradation prompt of a scene, simulated degradation,
and quality against a reference. These are what the CLI and the QGIS algorithms call."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import DampCancelled, DampInputError
from .raster import RasterReader, RasterWriter, check_output_path
from .scaling import measure_scaling



def fill_invalid(cube: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid samples by their band's median of valid samples (0 where a band has none)."""
    out = cube.copy()
    for b in range(cube.shape[0]):
        bad = ~valid[b]
        if bad.any():
            good = cube[b][valid[b]]
            out[b][bad] = np.median(good) if good.size else 0.0
    return out


@dataclass(frozen=True)
class ScenePrompt:
    """The degradation prompt of a raster (the scene's, see `analyse_scene`) and what it was measured on."""

    metrics: dict[str, float]
    bands: int
    width: int
    height: int
    tiles: int

    def to_dict(self) -> dict:
        return {**self.metrics, "bands": self.bands, "width": self.width, "height": self.height,
                "tiles": self.tiles}


def prompt_raster(path: str | os.PathLike, cancelled: Callable[[], bool] | None = None) -> ScenePrompt:
    """The six DP metrics of a raster file: the scene prompt of `analyse_scene`, the one that
    routes `damp restore` (the median over a fixed grid of 64-pixel sample windows).
    DampCancelled when ``cancelled()`` turns True."""
    from .scene_analysis import analyse_scene

    with RasterReader(path, min_bands=3) as reader:
        analysis = analyse_scene(reader, cancelled=cancelled)
        info = reader.info
    return ScenePrompt(analysis.prompt_dict(), info.bands, info.width, info.height, len(analysis.windows))


def read_scaled(path: str | os.PathLike, min_bands: int = 3):
    """Read a whole raster scaled to about [0, 1]: (cube, valid, info, scaling)."""
    with RasterReader(path, min_bands=min_bands) as reader:
        scaling = measure_scaling(reader)
        cube, valid = reader.read_all()
        info = reader.info
    return cube / scaling.factor, valid, info, scaling


def degrade_raster(src: str | os.PathLike, dst: str | os.PathLike, kind: str, seed: int = 0, *,
                   progress: Callable[[float], None] | None = None, cancelled: Callable[[], bool] | None = None,
                   **params):
    """Write a degraded copy of `src` (float32, same grid, wavelengths and nodata) and return the record.

    The record of what was applied is stored in the output's metadata (DAMP_DEGRADATION, JSON).
    ``progress`` is told the fraction done after reading and after degrading; ``cancelled`` is
    asked then too, and a cancel (DampCancelled) comes before anything is written.
    """
    from .degrade import degrade

    def step(fraction: float) -> None:
        if cancelled is not None and cancelled():
            raise DampCancelled("Cancelled; no output was written.")
        if progress is not None:
            progress(fraction)

    out = check_output_path(dst, src)
    cube, valid, info, scaling = read_scaled(src, min_bands=1)
    step(0.4)
    degraded, record = degrade(fill_invalid(cube, valid), kind, seed=seed, **params)
    step(0.8)
    degraded = degraded.astype(np.float32) * np.float32(scaling.factor)
    nodata = output_nodata(info.nodata, valid)
    if nodata is not None:
        degraded[~valid] = nodata
    meta = {**info.metadata, "DAMP_DEGRADATION": json.dumps(record.to_dict())}
    with RasterWriter(out, info, dtype="float32", nodata=nodata, metadata=meta) as writer:
        writer.write(degraded, 0, 0)
    if progress is not None:
        progress(1.0)
    return record


def output_nodata(nodata: float | None, valid: np.ndarray) -> float | None:
    """Nodata for a float32 output: the input's value, or NaN when the input marks gaps only by NaN."""
    if nodata is not None:
        return float(nodata)
    return float("nan") if not valid.all() else None


def evaluate_rasters(reference: str | os.PathLike, test: str | os.PathLike,
                     data_range: float | None = None) -> dict[str, float]:
    """PSNR / SSIM / SAM / ERGAS of `test` against `reference`, and the "peak" they were scored with.

    The field's convention (`quality.raster_convention`): the peak is the reference's maximum
    over the scored samples, or `data_range` when given (e.g. 1 for reflectance, 65535 for
    16-bit counts); both rasters, in physical units (band scale and offset applied), are divided
    by it and neither is clipped, so a raster scored against itself gets the PSNR cap, SSIM 1,
    SAM 0 and ERGAS 0. Pixels invalid in either raster and bands without any valid sample in the
    reference are left out; SSIM's windows see those pixels as 0 in both rasters.
    """
    from .quality import check_data_range, evaluate, reference_peak

    given = None if data_range is None else check_data_range(data_range)
    with RasterReader(reference, min_bands=3) as reader:
        ref, ref_valid = reader.read_all()
        ref_shape = reader.info.shape
    with RasterReader(test) as reader:
        if reader.info.shape != ref_shape:
            raise DampInputError(f"The rasters differ in shape: reference {ref_shape} vs test "
                                 f"{reader.info.shape} (bands, rows, cols); compare rasters on the same grid.")
        est, est_valid = reader.read_all()
    keep = ref_valid.any(axis=(1, 2))
    valid = (ref_valid & est_valid)[keep].all(axis=0)
    if not valid.any():
        raise DampInputError("The two rasters share no valid pixel; nothing to compare.")
    ref, est = ref[keep], est[keep]
    ref[:, ~valid] = 0.0
    est[:, ~valid] = 0.0
    peak = given if given is not None else reference_peak(ref, valid)
    scores = evaluate(ref.astype(np.float64) / peak, est.astype(np.float64) / peak, valid=valid, clip=False)
    return {**scores, "peak": peak}
