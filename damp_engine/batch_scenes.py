"""Which scenes a batch restores and where each one goes: the inputs expanded into rasters, and
one :class:`SceneJob` per scene with its output paths and the settings that identify its result."""
from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from .errors import DampInputError
from .manifest import file_sha256, file_stat

LIST_SUFFIXES = {".txt", ".lst", ".list"}   # text files that list rasters, one a line
GLOB_CHARS = set("*?[")


def collect_scenes(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The rasters named by `inputs`, in order and without repeats.

    Each input is a raster file, a folder (its raster files, not recursive), a glob pattern, a
    text file (.txt, .lst, .list) listing rasters one a line (blank lines and # comments skipped,
    relative paths taken from the list's folder), or a GDAL virtual path (``/vsicurl/…``, taken
    as is). A file or pattern given directly that names nothing is a DampInputError; a missing
    file listed in a text file becomes a scene that fails, so that the rest of the list runs.
    """
    from .raster import RASTER_SUFFIXES

    def rasters(paths) -> list[str]:
        return [str(p) for p in sorted(paths) if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
                and not p.name.startswith(".")]

    scenes: list[str] = []
    for item in map(str, inputs):
        path = Path(item).expanduser()
        if item.startswith("/vsi"):
            found = [item]
        elif GLOB_CHARS & set(item):
            found = rasters(Path(p).resolve() for p in glob.glob(str(path)))
            if not found:
                raise DampInputError(f"No raster matches {item}; rasters end in {', '.join(sorted(RASTER_SUFFIXES))}.")
        elif path.is_dir():
            found = rasters(path.resolve().iterdir())
            if not found:
                raise DampInputError(f"The folder {item} holds no raster files "
                                     f"({', '.join(sorted(RASTER_SUFFIXES))}).")
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            found = _read_list(path.resolve())
        elif path.is_file():
            found = [str(path.resolve())]
        else:
            raise DampInputError(f"Input not found: {item}. Give rasters, folders, glob patterns or a .txt list.")
        scenes.extend(found)
    return list(dict.fromkeys(scenes))


def _read_list(path: Path) -> list[str]:
    """The rasters of a list file: one per line, relative to the list's folder, # for comments."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    entries = [line for line in lines if line and not line.startswith("#")]
    if not entries:
        raise DampInputError(f"The list {path} names no rasters; write one path per line.")
    return [e if e.startswith("/vsi") else str((path.parent / Path(e).expanduser()).resolve()) for e in entries]


def scene_name(scene: str) -> str:
    """The file name of a scene's path or GDAL virtual path (query strings dropped)."""
    return PurePosixPath(scene.split("?", 1)[0].replace("\\", "/")).name


def output_name(scene: str) -> str:
    """The input's file name, or its stem + .tif when GDAL cannot write that format (e.g. .vrt)."""
    from .raster import driver_for

    name = scene_name(scene)
    try:
        driver_for(name)
    except DampInputError:
        return f"{PurePosixPath(name).stem}.tif"
    return name


@dataclass(frozen=True)
class SceneJob:
    """Everything a worker needs to restore one scene; `settings` also identifies the result."""

    scene: str
    output: str
    model: str
    options: dict            # restore_raster keywords: tile, halo, batch, device, prompt_scope, bad_bands
    threads: int
    mask: str | None = None
    report: str | None = None
    routing_map: str | None = None
    prompt_map: str | None = None
    cancel_event: str | None = None

    @property
    def settings(self) -> dict:
        """What, besides the input, decides the output: a rerun with other settings redoes the scene."""
        return {**self.options, "model": self.model, "model_sha256": _model_digest(self.model),
                "threads": self.threads, "mask": self.mask, "report": self.report,
                "routing_map": self.routing_map, "prompt_map": self.prompt_map}


def plan_jobs(scenes: Sequence[str], out_dir: Path, *, model: str, options: dict, threads: int,
              masks: Path | None = None, reports: Path | None = None, routing_maps: Path | None = None,
              prompt_maps: Path | None = None) -> list[SceneJob]:
    """One SceneJob per scene; DampInputError when two scenes would write the same output or a
    scene's output would be the scene itself."""
    jobs, seen = [], {}
    for scene in scenes:
        name = output_name(scene)
        output = out_dir / name
        if name in seen:
            raise DampInputError(f"{seen[name]} and {scene} would both be written to {output}; restore "
                                 "scenes with the same file name into different folders.")
        if not scene.startswith("/vsi") and Path(scene).resolve() == output:
            raise DampInputError(f"The output folder {out_dir} holds the input {scene}; choose another "
                                 "output folder (inputs are never overwritten).")
        seen[name] = scene
        stem = PurePosixPath(name).stem
        jobs.append(SceneJob(
            scene=scene, output=str(output), model=model, options=options, threads=threads,
            mask=str(masks / scene_name(scene)) if masks else None,
            report=str(reports / f"{stem}.json") if reports else None,
            routing_map=str(routing_maps / name) if routing_maps else None,
            prompt_map=str(prompt_maps / name) if prompt_maps else None))
    return jobs


_MODEL_DIGESTS: dict[tuple, str] = {}


def _model_digest(path: str) -> str:
    """SHA-256 of a model's weights and card (cached per path, size and modification time)."""
    weights = Path(path)
    files = [weights, weights.with_suffix(".json")]
    key = tuple((str(f), *file_stat(f)) for f in files)
    if key not in _MODEL_DIGESTS:
        digest = hashlib.sha256()
        for f in files:
            if f.is_file():
                digest.update(bytes.fromhex(file_sha256(f)))
        _MODEL_DIGESTS[key] = digest.hexdigest()
    return _MODEL_DIGESTS[key]
