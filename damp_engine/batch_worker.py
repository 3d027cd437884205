"""A batch on the worker's side: restore one scene with ``restore_raster`` and return its manifest
record. Each worker process loads the model once and keeps it for its next scenes, and polls the
batch's Dask event to stop when the batch is cancelled."""
from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .batch_scenes import SceneJob
from .errors import DampCancelled, DampInputError
from .manifest import file_facts, file_stat, raster_files

CANCEL_POLL_SECONDS = 0.5    # how often a worker asks the scheduler whether the batch was cancelled

_MODELS: dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


def _worker_model(path: str, device: str, threads: int):
    """The model of this worker process, loaded on its first scene and kept for the next ones."""
    import torch

    from .checkpoint import load_model

    torch.set_num_threads(threads)
    key = (path, device, *file_stat(Path(path)))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS.clear()
            _MODELS[key] = load_model(path, device=device)
        return _MODELS[key]


class _CancelFlag:
    """Polls the batch's Dask Event, at most every CANCEL_POLL_SECONDS (each look asks the scheduler)."""

    def __init__(self, name: str | None):
        self.event = None
        if name is not None:
            from distributed import Event

            self.event = Event(name)
        self._next, self._set = 0.0, False

    def __call__(self) -> bool:
        if self.event is not None and not self._set and time.monotonic() >= self._next:
            self._set = self.event.is_set()
            self._next = time.monotonic() + CANCEL_POLL_SECONDS
        return self._set


def restore_scene(job: SceneJob) -> dict:
    """Restore one scene with `restore_raster` and return its manifest record (runs on a worker,
    a single-threaded process: GDAL's block cache is sized to each scene in turn, as `damp restore`
    sizes it)."""
    from .raster import bound_gdal_cache
    from .tiling import restore_raster

    cancelled = _CancelFlag(job.cancel_event)
    if cancelled():
        raise DampCancelled("The batch was cancelled before this scene started.")
    if job.mask is not None and not Path(job.mask).is_file():
        raise DampInputError(f"No mask {job.mask} for {job.scene}; the masks folder needs one raster per "
                             "scene, with the scene's file name.")
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    model = _worker_model(job.model, job.options["device"], job.threads)
    bound_gdal_cache(job.scene)
    report = restore_raster(job.scene, job.output, model=model, mask=job.mask, report=job.report,
                            routing_map=job.routing_map, prompt_map=job.prompt_map, cancelled=cancelled,
                            **job.options)
    seconds = time.perf_counter() - clock
    written = [p for p in (job.output, job.routing_map, job.prompt_map) if p]
    outputs = {f: file_facts(f) for p in written for f in raster_files(p)}
    if job.report:
        outputs[job.report] = file_facts(job.report)
    summary = report.to_dict()
    return {
        "scene": job.scene, "output": job.output, "state": "done",
        "inputs": {f: file_facts(f) for f in raster_files(job.scene)}, "outputs": outputs,
        "started": started.isoformat(timespec="seconds"), "seconds": round(seconds, 3),
        "host": socket.gethostname(), "worker": _worker_address(),
        "prompt": scene_prompt(summary),
        "restore": {k: summary.get(k) for k in ("model", "device", "tiles", "bands", "width", "height", "seconds",
                                                "prompt", "routing", "scale_factor", "events")},
    }


def scene_prompt(report: dict) -> dict:
    """The degradation prompt of a scene from its restore report (`RestoreReport.to_dict`): the
    scene's own prompt where the report has one, else the summary over its tiles."""
    return report.get("scene_prompt") or report.get("prompt") or {}


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None
