"""Restore an archive of scenes on a Dask cluster, one task per scene (DESIGN §9).

`restore_batch` runs `damp_engine.tiling.restore_raster` on every scene of a list on Dask
distributed: a `LocalCluster` of worker processes sized to the machine by default, or any running
scheduler (an address such as ``tcp://host:8786``, a `dask-jobqueue` cluster object, a `Client`).
Each worker process loads the model once and keeps it; it uses one torch thread unless told
otherwise, so N workers keep N cores busy without contending for them.

Nothing lost, nothing done twice. `restore_raster` writes every output under a hidden temporary
name beside its destination and renames it into place when complete, so an output that exists
is whole. A manifest (JSON lines, `Manifest`) records each scene's state, the
size, time and SHA-256 of its input and output files, its settings, timings and degradation prompt.
A rerun skips a scene whose last record is "done" with the same settings, an unchanged input and
its outputs as recorded (same size, and same modification time or, failing that, same SHA-256),
and redoes the rest. A scene that fails (unreadable raster, worker killed) is submitted again up
to `retries` times, then reported, while the others go on.

Each scene is restored exactly as `restore_raster` restores it with the same settings and the same
number of torch threads (e.g. ``OMP_NUM_THREADS=1 damp restore``), bit for bit: the worker calls
that function. Thread count matters because CPU kernels split their sums by thread.

This module runs a batch from the client (skip, submit, collect, retry, record); which scenes and
where they go is ``batch_scenes``, the manifest and the file facts it records ``manifest``, one
scene on a worker ``batch_worker``, the cluster ``batch_cluster``.
"""
from __future__ import annotations

import os
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from .batch_cluster import PROFILE_SETTING, TRIM_SETTING, connect, dashboard_address, default_workers, slow_settings
from .batch_scenes import SceneJob, collect_scenes, plan_jobs, scene_name
from .batch_worker import restore_scene
from .errors import DampCancelled, DampInputError
from .limits import DEFAULT_BATCH, DEFAULT_HALO, DEFAULT_TILE
from .manifest import MANIFEST_NAME, Manifest, is_complete

DEFAULT_RETRIES = 2          # submissions after the first failure of a scene
POLL_SECONDS = 0.2           # how often the client looks at `cancelled`
CANCEL_GRACE_SECONDS = 60.0  # how long a cancel waits for running scenes to discard their files
TRACEBACK_FRAMES = 4         # frames of an unexpected error's traceback kept in the manifest

OnScene = Callable[["SceneResult", int, int], None] | None
Progress = Callable[[float], None] | None
Cancelled = Callable[[], bool] | None
Log = Callable[[str], None] | None


# --- what happened -----------------------------------------------------------------------------

STATES = ("done", "skipped", "failed", "cancelled")


@dataclass
class SceneResult:
    """How one scene ended: "done" (restored now), "skipped" (complete before), "failed", "cancelled"."""

    scene: str
    output: str
    state: str
    attempts: int = 0
    error: str | None = None
    seconds: float | None = None
    record: dict = field(default_factory=dict)


@dataclass
class BatchReport:
    """The record of one `restore_batch` call, scene by scene in input order."""

    scenes: list[SceneResult]
    out_dir: Path
    manifest: Path
    seconds: float
    workers: int
    dashboard: str | None = None

    def count(self, state: str) -> int:
        return sum(s.state == state for s in self.scenes)

    @property
    def failed(self) -> list[SceneResult]:
        return [s for s in self.scenes if s.state == "failed"]

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(state)} {state}" for state in STATES if self.count(state))
        return (f"{len(self.scenes)} scene(s) in {self.seconds:.1f} s on {self.workers} worker(s): "
                f"{counts or 'nothing to do'}. Outputs in {self.out_dir}; manifest {self.manifest}.")

    def failure_lines(self) -> list[str]:
        """One line per failed scene: which, after how many attempts, and why."""
        return [f"failed: {s.scene} (after {s.attempts} attempt(s)): {s.error}" for s in self.failed]


# --- the batch, on the client -------------------------------------------------------------------

def restore_batch(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  workers: int | None = None, scheduler=None, manifest: str | os.PathLike | None = None,
                  retries: int = DEFAULT_RETRIES, threads: int = 1, model=None, tile: int = DEFAULT_TILE,
                  halo: int = DEFAULT_HALO, batch: int | None = DEFAULT_BATCH, device: str = "auto",
                  bad_bands: Sequence[int] | None = None,
                  prompt_scope: str = "scene", masks: str | os.PathLike | None = None,
                  reports: str | os.PathLike | None = None, routing_maps: str | os.PathLike | None = None,
                  prompt_maps: str | os.PathLike | None = None, on_scene: OnScene = None,
                  progress: Progress = None, cancelled: Cancelled = None, log: Log = None) -> BatchReport:
    """Restore every scene of `inputs` into `out_dir` on a Dask cluster; see the module docstring.

    inputs:       rasters, folders, glob patterns, .txt lists or GDAL virtual paths (`collect_scenes`).
    out_dir:      folder of the outputs (created if missing); each output has its input's file name.
    workers:      processes of the embedded LocalCluster (default: cores // threads, at most one per
                  scene to do); ignored with `scheduler`.
    scheduler:    a running cluster instead: "tcp://host:8786", a dask-jobqueue cluster or a Client.
    manifest:     the JSON-lines manifest (default out_dir/manifest.jsonl).
    retries:      submissions of a failed scene after its first failure.
    threads:      torch threads per worker process.
    model … prompt_scope: as for `restore_raster` (model: None for the bundled model, or a path).
    masks:        folder of masks, one per scene with the scene's file name.
    reports, routing_maps, prompt_maps: folders for each scene's JSON report, routing and prompt map.
    on_scene:     called with (SceneResult, scenes finished, scenes in all) as each scene ends.
    progress:     called with the fraction of scenes finished.
    cancelled:    polled; True stops the batch: queued scenes are dropped, running ones discard
                  their files, finished ones stay. Then DampCancelled is raised.
    log:          one-line messages (cluster, dashboard, retries).

    Returns a BatchReport; scenes that failed after their retries are in `.failed` (nothing is raised
    for them). DampInputError for bad arguments, before any scene runs.
    """
    from .checkpoint import default_model_path

    clock = time.perf_counter()
    _check_batch_settings(tile, halo, batch, prompt_scope, retries, threads, workers)
    bad = sorted(int(b) for b in bad_bands or ())
    if bad and bad[0] < 1:
        raise DampInputError(f"Bad band {bad[0]} does not exist; bands are numbered from 1.")
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    folders = {name: _folder(value, name, out) for name, value in
               (("masks", masks), ("reports", reports), ("routing_maps", routing_maps), ("prompt_maps", prompt_maps))}
    model_path = str(Path(model or default_model_path()).expanduser().resolve())
    if not Path(model_path).is_file():
        raise DampInputError(f"Model file not found: {model_path}. Give a .safetensors file with its .json card.")
    options = {"tile": tile, "halo": halo, "batch": batch, "device": device, "prompt_scope": prompt_scope,
               "bad_bands": bad or None}
    jobs = plan_jobs(collect_scenes(inputs), out, model=model_path, options=options, threads=threads, **folders)
    book = Manifest(manifest or out / MANIFEST_NAME)
    with book:
        run = _BatchRun(jobs, book, retries, on_scene, progress, log)
        todo = run.skip_complete()
        if not todo:
            return run.report(out, clock, 0, None)
        with connect(scheduler, workers or min(len(todo), default_workers(threads))) as (client, n):
            link = dashboard_address(client)
            if log is not None:
                log(f"Dask: {len(todo)} scene(s) to restore on {n} worker(s)"
                    + (f"; dashboard {link}" if link else " (no dashboard: pip install bokeh)"))
                slow = sorted({what for found in client.run(slow_settings).values() for what in found})
                if slow:
                    log(f"The workers run with {' and '.join(slow)}, which slow torch down by up to 2.4 times on a "
                        f"CPU; start them with the Dask settings {TRIM_SETTING}: null and {PROFILE_SETTING}: "
                        "false (see the README).")
            run.execute(client, todo, cancelled)
            return run.report(out, clock, n, link)


def _check_batch_settings(tile: int, halo: int, batch: int | None, prompt_scope: str, retries: int, threads: int,
                          workers: int | None) -> None:
    """DampInputError for a bad setting before any scene runs (restore_raster checks its own again per scene)."""
    try:
        from .tiling import _check_settings
    except ImportError:  # pragma: no cover - then each scene reports it
        pass
    else:
        _check_settings(tile, halo, batch, prompt_scope)
    if retries < 0:
        raise DampInputError(f"The retries cannot be negative ({retries}); 2 is a good default.")
    if threads < 1 or (workers is not None and workers < 1):
        raise DampInputError("Threads per worker and workers must be at least 1.")


def _folder(value, name: str, out: Path) -> Path | None:
    """An existing folder for per-scene side outputs (masks: an input folder), other than `out`."""
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if name != "masks":
        path.mkdir(parents=True, exist_ok=True)
        if path == out:
            raise DampInputError(f"The {name.replace('_', ' ')} need a folder other than the outputs' ({out}), "
                                 "as they take the scenes' file names.")
    elif not path.is_dir():
        raise DampInputError(f"The masks folder {path} does not exist.")
    return path


class _BatchRun:
    """The client's side of a batch: skip, submit, collect, retry, record."""

    def __init__(self, jobs: list[SceneJob], manifest: Manifest, retries: int, on_scene: OnScene,
                 progress: Progress, log: Log):
        self.jobs, self.manifest, self.retries = jobs, manifest, retries
        self.on_scene, self.progress, self.log = on_scene, progress, log
        self.results: dict[str, SceneResult] = {}
        self.settings = {job.scene: job.settings for job in jobs}

    def skip_complete(self) -> list[SceneJob]:
        """Report the scenes the manifest shows complete as skipped; return the others."""
        last = self.manifest.read()
        todo = []
        for job in self.jobs:
            record = last.get(job.scene)
            if is_complete(record, job, self.settings[job.scene]):
                self._finish(SceneResult(job.scene, job.output, "skipped", record=record))
            else:
                todo.append(job)
        return todo

    def execute(self, client, todo: list[SceneJob], cancelled: Cancelled) -> None:
        """Run the scenes to do; on a cancel (or Ctrl-C) stop them and raise DampCancelled."""
        from distributed import Event, wait

        event_name = f"damp-cancel-{uuid.uuid4().hex}"
        event = Event(event_name, client=client)
        pending: dict[Any, tuple[SceneJob, int]] = {}

        def submit(job: SceneJob, attempt: int) -> None:
            job = replace(job, cancel_event=event_name)
            key = f"damp-restore-{scene_name(job.scene)}-{attempt}-{uuid.uuid4().hex[:8]}"
            pending[client.submit(restore_scene, job, key=key, pure=False)] = (job, attempt)

        for job in todo:
            submit(job, 1)
        try:
            while pending:
                if cancelled is not None and cancelled():
                    raise DampCancelled("cancelled")
                try:
                    done, _ = wait(list(pending), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for future in done:
                    job, attempt = pending.pop(future)
                    retry = self._collect(future, job, attempt)
                    if retry:
                        submit(job, attempt + 1)
        except (DampCancelled, KeyboardInterrupt) as exc:
            self._cancel(event, pending)
            finished = sum(r.state in ("done", "skipped") for r in self.results.values())
            raise DampCancelled(f"Cancelled: {finished} of {len(self.jobs)} scene(s) are complete and kept; "
                                f"the manifest {self.manifest.path} lists them, and a rerun restores the rest.") \
                from (exc if isinstance(exc, KeyboardInterrupt) else None)

    def _collect(self, future, job: SceneJob, attempt: int) -> bool:
        """Record a finished task; True when the scene should be submitted again."""
        if future.status == "finished":
            record = {**future.result(), "attempt": attempt, "settings": self.settings[job.scene],
                      "finished": _now()}
            self.manifest.append(record)
            self._finish(SceneResult(job.scene, job.output, "done", attempt, seconds=record["seconds"],
                                     record=record))
            return False
        exc = future.exception()
        error, final = _explain(exc), attempt > self.retries
        record = {"scene": job.scene, "output": job.output, "state": "failed", "attempt": attempt,
                  "final": final, "error": error, "settings": self.settings[job.scene], "finished": _now()}
        if not isinstance(exc, DampInputError) and future.traceback() is not None:
            record["traceback"] = "".join(traceback.format_tb(future.traceback())[-TRACEBACK_FRAMES:])
        self.manifest.append(record)
        if not final:
            if self.log is not None:
                self.log(f"{job.scene} failed (attempt {attempt} of {self.retries + 1}): {error}; retrying.")
            return True
        self._finish(SceneResult(job.scene, job.output, "failed", attempt, error=error, record=record))
        return False

    def _cancel(self, event, pending: dict) -> None:
        """Tell running scenes to stop (they discard their temporary files), drop queued ones, wait."""
        from distributed import wait

        event.set()
        try:
            wait(list(pending), timeout=CANCEL_GRACE_SECONDS)
        except TimeoutError:
            pass
        for future, (job, attempt) in pending.items():
            if future.status == "finished":  # it ended before it saw the cancel: keep it
                self._collect(future, job, attempt)
                continue
            future.cancel()
            record = {"scene": job.scene, "output": job.output, "state": "cancelled", "attempt": attempt,
                      "settings": self.settings[job.scene], "finished": _now()}
            self.manifest.append(record)
            self.results[job.scene] = SceneResult(job.scene, job.output, "cancelled", attempt, record=record)

    def _finish(self, result: SceneResult) -> None:
        self.results[result.scene] = result
        done, total = len(self.results), len(self.jobs)
        if self.on_scene is not None:
            self.on_scene(result, done, total)
        if self.progress is not None:
            self.progress(done / total)

    def report(self, out: Path, clock: float, workers: int, link: str | None) -> BatchReport:
        scenes = [self.results.get(j.scene) or SceneResult(j.scene, j.output, "cancelled") for j in self.jobs]
        return BatchReport(scenes, out, self.manifest.path, round(time.perf_counter() - clock, 3), workers, link)


def _explain(exc: BaseException) -> str:
    """Why a scene failed, in a sentence: the engine's own message for input errors."""
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        return "the worker process restoring it died (killed, or out of memory)"
    if isinstance(exc, DampInputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
