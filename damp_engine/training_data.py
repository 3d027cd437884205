"""The clean rasters a model trains on: found, read into memory, cut into random crops.

Training (`damp_engine.train`) degrades these crops itself; this module only supplies them, and
the prompt statistics over them that a new model's card carries (its prompt normalisation and
the "seen in training" ranges the dock shows).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .degrade import degrade, sample_training_degradation
from .errors import DampInputError
from .model import prompt_features
from .raster import RASTER_SUFFIXES, RasterReader
from .scaling import measure_scaling
from .scene import fill_invalid


@dataclass
class Scene:
    """One training raster held in memory, scaled to about [0, 1], bands without data removed."""

    name: str
    cube: np.ndarray
    sha256: str


def list_rasters(paths: list[str]) -> list[Path]:
    """Raster files named directly or found (recursively) in the given folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise DampInputError(f"Training data not found: {p}.")
    if not files:
        raise DampInputError(f"No rasters (.tif, .bsq, …) found in {', '.join(paths)}.")
    return files


def file_sha256(path: Path) -> str:
    """The file's sha256 (hex), recorded in the model card for every training raster."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_scene(path: Path, min_bands: int, min_size: int) -> Scene | None:
    """Read a raster for training; None if it is too small or has too few bands with data."""
    with RasterReader(path) as reader:
        scaling = measure_scaling(reader)
        cube, valid = reader.read_all()
    cube, valid = cube[scaling.good_bands], valid[scaling.good_bands]
    if cube.shape[0] < 3 or min(cube.shape[1:]) < min_size:
        return None
    # a pixel invalid in any band gets, in every band, that band's median over the complete pixels
    cube = fill_invalid(cube / scaling.factor, np.broadcast_to(valid.all(axis=0), valid.shape))
    return Scene(path.name, np.ascontiguousarray(cube, np.float32), file_sha256(path))


def sample_crop(scene: Scene, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random (C, crop, crop) training crop with all the scene's bands, randomly flipped and rotated."""
    _, h, w = scene.cube.shape
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    patch = scene.cube[:, y:y + crop, x:x + crop]
    patch = np.rot90(patch, k=int(rng.integers(4)), axes=(1, 2))
    if rng.random() < 0.5:
        patch = patch[:, :, ::-1]
    return np.ascontiguousarray(patch)


def prompt_statistics(scenes: list[Scene], crop: int, count: int = 256, seed: int = 12345) -> dict:
    """DP statistics over degraded and clean training crops.

    Returns the normalisation (mean and std of `prompt_features` of the raw metrics over both)
    and, per metric, the 5–95 % range of the raw metrics on clean and on degraded crops (shown
    to users as the "seen in training" bars).
    """
    from .prompt import METRIC_NAMES, compute_prompt

    rng = np.random.default_rng(seed)
    degraded_rows, clean_rows = [], []
    for _ in range(max(1, count)):
        patch = sample_crop(scenes[rng.integers(len(scenes))], crop, rng)
        kind, params = sample_training_degradation(rng)
        degraded, _ = degrade(patch, kind, seed=int(rng.integers(2**31)), **params)
        degraded_rows.append(compute_prompt(degraded).values.double())
        clean_rows.append(compute_prompt(patch).values.double())
    degraded_v, clean_v = torch.cat(degraded_rows), torch.cat(clean_rows)
    both = prompt_features(torch.cat([degraded_v, clean_v]))

    def ranges(v: torch.Tensor) -> dict[str, list[float]]:
        q = torch.quantile(v, torch.tensor([0.05, 0.95], dtype=v.dtype), dim=0)
        return {name: [float(q[0, i]), float(q[1, i])] for i, name in enumerate(METRIC_NAMES)}

    return {"shift": both.mean(0).tolist(), "scale": both.std(0).clamp_min(1e-6).tolist(),
            "ranges": {"clean": ranges(clean_v), "degraded": ranges(degraded_v)}}
