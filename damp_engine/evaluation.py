"""The quality suite: how much DAMP restores, task by task, on clean reference scenes.

For every scene and task the clean cube is degraded with a fixed seed (`damp_engine.degrade`),
restored by the model, and both the degraded input and the restoration are scored against the
clean cube (`damp_engine.quality.evaluate`: PSNR, SSIM, SAM, ERGAS). This is the engine-side
part only; the benchmark script ``bench/quality_suite.py`` adds classical baselines through the
``on_case`` hook.

Conventions
-----------
- Reference scaling: unscaled unsigned-integer rasters that use their type's range are divided
  by the type's maximum (CAVE uint16 counts / 65535); rasters whose values already lie within about [0, 1] after the
  GDAL band scale (Samson, EnMAP reflectance) are used as they are; anything else is divided by
  its 99.9th percentile. Bands without valid data are dropped and invalid pixels filled with
  their band's median.
- ``crop`` takes the centre crop × crop pixels (the whole scene where it is smaller).
- Seeds: the seed of a (scene, task) case is ``seed + crc32("scene/task")`` mod 2³¹, so a case
  gets the same degradation whichever subset of scenes and tasks is run.
- DAMP restores the degraded cube through `damp_engine.tiling.restore_raster`, exactly as
  ``damp restore`` does (its own scene analysis and scaling, tiles of ``TILE`` pixels with
  ``HALO`` pixels of context): the suite measures what users run.
- Band-loss rows also score the lost bands alone (``psnr_lost_bands``): the other bands are exact
  in the input, and each band's PSNR is capped at 100 dB, so the all-band mean hides the repair.
"""
from __future__ import annotations

import os
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from .checkpoint import LoadedModel, ModelArg, as_loaded_model
from .degrade import Degradation, degrade
from .errors import DampInputError
from .limits import DEFAULT_HALO, DEFAULT_TILE
from .names import ZERO_SHOT_KINDS
from .quality import evaluate, psnr
from .raster import RASTER_SUFFIXES, RasterReader
from .scaling import measure_scaling
from .scene import fill_invalid

TILE, HALO = DEFAULT_TILE, DEFAULT_HALO  # the defaults of `damp restore`
MIN_READ = 64  # smallest read window: the degradation prompt needs some pixels
MIN_CROP = 32  # a 15-pixel blur kernel and the 7-pixel SSIM window need room
DEFAULT_SCENES = (Path(__file__).resolve().parent.parent / "resources" / "sample" / "enmap_potsdam_sample.tif",)


@dataclass(frozen=True)
class Task:
    """One row of the suite: a degradation kind with fixed parameters."""

    name: str
    label: str
    kind: str
    params: dict

    @property
    def zero_shot(self) -> bool:
        """True for degradations the model never saw in training."""
        return self.kind in ZERO_SHOT_KINDS


TASKS: tuple[Task, ...] = (
    Task("gaussian_noise_30", "Gaussian noise σ=30", "gaussian_noise", {"sigma": 30.0}),
    Task("gaussian_noise_50", "Gaussian noise σ=50", "gaussian_noise", {"sigma": 50.0}),
    Task("gaussian_noise_70", "Gaussian noise σ=70", "gaussian_noise", {"sigma": 70.0}),
    Task("gaussian_blur_9", "Gaussian blur k=9", "gaussian_blur", {"ksize": 9}),
    Task("gaussian_blur_15", "Gaussian blur k=15", "gaussian_blur", {"ksize": 15}),
    Task("sr_x2", "Super-resolution ×2", "sr", {"factor": 2}),
    Task("sr_x4", "Super-resolution ×4", "sr", {"factor": 4}),
    Task("inpaint_70", "Inpainting 70 %", "inpaint", {"fraction": 0.7}),
    Task("inpaint_80", "Inpainting 80 %", "inpaint", {"fraction": 0.8}),
    Task("band_loss_10", "Band loss 10 %", "band_loss", {"fraction": 0.1}),
    Task("band_loss_20", "Band loss 20 %", "band_loss", {"fraction": 0.2}),
    Task("complex", "Complex noise (non-i.i.d. + stripes/dead lines/impulse)", "complex", {}),
    Task("motion_blur", "Motion blur 15 px, 45°", "motion_blur", {"size": 15, "angle": 45.0}),
    Task("poisson_30", "Poisson noise, scale 30", "poisson", {"scale": 30.0}),
)


@dataclass(frozen=True)
class Case:
    """One (scene, task) pair: the clean reference, the degraded cube and the degradation record."""

    scene: str
    task: Task
    clean: np.ndarray
    degraded: np.ndarray
    record: Degradation


def select_tasks(names: Iterable[str] | None) -> list[Task]:
    """The tasks called ``names`` (all of them for None or none), in suite order."""
    wanted = list(names or [])
    if not wanted:
        return list(TASKS)
    known = {t.name for t in TASKS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise DampInputError(f"Unknown task(s) {', '.join(unknown)}; choose from: {', '.join(sorted(known))}.")
    return [t for t in TASKS if t.name in wanted]


def scene_files(scenes: Iterable[str | os.PathLike] | None) -> list[Path]:
    """Raster files named directly or found in the given folders (the bundled sample for None or none)."""
    files: list[Path] = []
    for p in map(Path, list(scenes or []) or DEFAULT_SCENES):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in RASTER_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise DampInputError(f"Scene not found: {p}; give raster files or folders of them.")
    if not files:
        raise DampInputError("No rasters (.tif, .bsq, …) found among the given scenes.")
    return files


def reference_factor(reader: RasterReader, percentile_value: float) -> float:
    """The divisor that brings a clean raster to [0, 1] (see the module's conventions)."""
    info = reader.info
    unscaled = all(s == 1 for s in info.scales) and all(o == 0 for o in info.offsets)
    if unscaled and np.issubdtype(np.dtype(info.dtype), np.unsignedinteger):
        top = float(np.iinfo(np.dtype(info.dtype)).max)
        if percentile_value > 0.05 * top:  # counts that use the type's range (CAVE); not HYDICE's 0–592
            return top
    return 1.0 if percentile_value <= 1.0 else percentile_value


def load_reference(path: Path, crop: int | None) -> np.ndarray:
    """The clean (C, H, W) float32 reference of a scene: its centre crop, scaled to [0, 1]."""
    with RasterReader(path, min_bands=3) as reader:
        scaling = measure_scaling(reader)
        w, h = reader.info.width, reader.info.height
        cw, ch = (min(crop, w), min(crop, h)) if crop else (w, h)
        data, valid = reader.read((w - cw) // 2, (h - ch) // 2, cw, ch)
        factor = reference_factor(reader, scaling.factor)
    good = scaling.good_bands
    if good.sum() < 3:
        raise DampInputError(f"{path} has fewer than 3 bands with valid data; the suite needs at least 3.")
    return (fill_invalid(data[good], valid[good]) / factor).astype(np.float32)


def case_seed(seed: int, scene: str, task: Task) -> int:
    """The fixed seed of one (scene, task) case, independent of which other cases run."""
    return (seed + zlib.crc32(f"{scene}/{task.name}".encode())) % 2**31


def write_cube(path: Path, cube: np.ndarray) -> Path:
    """Write a (C, H, W) cube as a plain float32 GeoTIFF (no georeferencing) and return its path."""
    from osgeo import gdal

    c, h, w = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, c, gdal.GDT_Float32)
    for band in range(c):
        ds.GetRasterBand(band + 1).WriteArray(cube[band])
    ds = None
    return path


def restore(model: LoadedModel, cube: np.ndarray, tile: int = TILE, halo: int = HALO) -> np.ndarray:
    """Restore a (C, H, W) cube exactly as `damp restore` restores a raster, and return it.

    The cube is written to a temporary float32 GeoTIFF and restored by
    `damp_engine.tiling.restore_raster` (its own scene analysis, scaling and tile loop), so the
    suite measures what users run.
    """
    from osgeo import gdal

    from .tiling import restore_raster

    c, h, w = cube.shape
    with tempfile.TemporaryDirectory(prefix="damp-suite-") as folder:
        src, dst = write_cube(Path(folder) / "degraded.tif", cube), Path(folder) / "restored.tif"
        restore_raster(src, dst, model=model, tile=tile, halo=halo)
        ds = gdal.Open(str(dst))
        out = ds.ReadAsArray().astype(np.float32).reshape(c, h, w)
        ds = None
    return np.nan_to_num(out)


def score(clean: np.ndarray, estimate: np.ndarray, record: Degradation) -> dict[str, float]:
    """`evaluate` scores; band-loss cases add the PSNR of the lost bands alone."""
    scores = evaluate(clean, estimate)
    if record.kind == "band_loss":
        lost = record.bands
        scores["psnr_lost_bands"] = psnr(clean[lost], np.clip(estimate[lost], 0.0, 1.0))
    return scores


def run_suite(model: ModelArg = None,
              scenes: Iterable[str | os.PathLike] | None = None, crop: int | None = None,
              tasks: Iterable[str] | None = None, progress: Callable[[float], None] | None = None,
              seed: int = 0, on_case: Callable[[Case, dict], None] | None = None) -> list[dict[str, Any]]:
    """Score the degraded input and DAMP's restoration for every scene × task.

    model:    a LoadedModel, a model path, or None for the default model.
    scenes:   raster files or folders (None or empty: the bundled sample raster).
    crop:     centre crop size in pixels (None: whole scenes).
    tasks:    task names from :data:`TASKS` (None or empty: all).
    progress: called with the fraction done after each case.
    on_case:  called with each :class:`Case` and its row before the row is stored, so a caller
              can add entries (the benchmark adds classical baselines).

    Returns one dict per case: scene, task, label, kind, params (as applied, e.g. complex's drawn
    extra), zero_shot, seed, shape [C, H, W], input and damp (score dicts), damp_seconds.
    """
    if crop is not None and crop < MIN_CROP:
        raise DampInputError(f"The crop must be at least {MIN_CROP} pixels, not {crop}.")
    loaded = as_loaded_model(model)
    files, selected = scene_files(scenes), select_tasks(tasks)
    total, rows = len(files) * len(selected), []
    for path in files:
        clean = load_reference(path, crop)
        for task in selected:
            degraded, record = degrade(clean, task.kind, case_seed(seed, path.stem, task), **task.params)
            start = time.perf_counter()
            restored = restore(loaded, degraded)
            seconds = round(time.perf_counter() - start, 3)
            row = {"scene": path.stem, "task": task.name, "label": task.label, "kind": task.kind,
                   "params": record.params, "zero_shot": task.zero_shot, "seed": record.seed,
                   "shape": list(clean.shape), "input": score(clean, degraded, record),
                   "damp": score(clean, restored, record), "damp_seconds": seconds}
            if on_case:
                on_case(Case(path.stem, task, clean, degraded, record), row)
            rows.append(row)
            if progress:
                progress(len(rows) / total)
    return rows


def mean_scores(scores: list[dict[str, float]]) -> dict[str, float]:
    """The key-by-key mean of score dicts that share their keys."""
    return {key: float(np.mean([s[key] for s in scores])) for key in scores[0]}


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task, in suite order: task, label, zero_shot, scenes, and input and damp scores
    averaged over the scenes."""
    summary = []
    for task in TASKS:
        group = [r for r in rows if r["task"] == task.name]
        if group:
            summary.append({"task": task.name, "label": task.label, "zero_shot": task.zero_shot,
                            "scenes": len(group), "input": mean_scores([r["input"] for r in group]),
                            "damp": mean_scores([r["damp"] for r in group])})
    return summary
