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
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Sequence

from .errors import DampCancelled, DampInputError
from .limits import DEFAULT_BATCH, DEFAULT_HALO, DEFAULT_TILE

try:
    import fcntl  # the manifest's lock; Windows has no fcntl and goes without
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST_NAME = "manifest.jsonl"
LIST_SUFFIXES = {".txt", ".lst", ".list"}   # text files that list rasters, one a line
GLOB_CHARS = set("*?[")
DEFAULT_RETRIES = 2          # submissions after the first failure of a scene
POLL_SECONDS = 0.2           # how often the client looks at `cancelled`
CANCEL_POLL_SECONDS = 0.5    # how often a worker asks the scheduler whether the batch was cancelled
CANCEL_GRACE_SECONDS = 60.0  # how long a cancel waits for running scenes to discard their files
GDAL_CACHE_MB = 64           # per worker: streaming needs few cached blocks
HASH_CHUNK = 8 << 20
TRACEBACK_FRAMES = 4         # frames of an unexpected error's traceback kept in the manifest
DASHBOARD = ":8787"          # Dask's usual dashboard port (another one is picked if it is taken)
# Dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold at
# 128 kB: every tensor is then mapped and zeroed afresh, and a scene restores 2 to 2.4 times slower.
TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
# The worker's statistical profiler samples every thread's stack each 10 ms: 30 % of a scene's time.
PROFILE_SETTING = "distributed.worker.profile.enabled"

OnScene = Callable[["SceneResult", int, int], None] | None
Progress = Callable[[float], None] | None
Cancelled = Callable[[], bool] | None
Log = Callable[[str], None] | None


# --- which scenes -------------------------------------------------------------------------------

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


# --- the plan: one job per scene ----------------------------------------------------------------

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
    key = tuple((str(f), *_stat(f)) for f in files)
    if key not in _MODEL_DIGESTS:
        digest = hashlib.sha256()
        for f in files:
            if f.is_file():
                digest.update(bytes.fromhex(_sha256(f)))
        _MODEL_DIGESTS[key] = digest.hexdigest()
    return _MODEL_DIGESTS[key]


# --- files: size, modification time, checksum ---------------------------------------------------

def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_facts(path: str) -> dict:
    """{"size", "mtime_ns", "sha256"} of a local file; of a GDAL virtual file, size and time only
    (reading a remote scene twice to hash it would double the transfer)."""
    if path.startswith("/vsi"):
        from osgeo import gdal

        st = gdal.VSIStatL(path)
        return {"size": st.size, "mtime_ns": int(st.mtime) * 10**9, "sha256": None} if st else {}
    size, mtime = _stat(Path(path))
    return {"size": size, "mtime_ns": mtime, "sha256": _sha256(Path(path))}


def raster_files(path: str) -> list[str]:
    """The files that make up a raster (e.g. an ENVI cube and its .hdr), the main one first."""
    from osgeo import gdal

    ds = gdal.Open(path)
    try:
        files = ds.GetFileList() or [path]
    finally:
        ds = None
    main = [path] if not path.startswith("/vsi") else []
    return list(dict.fromkeys(main + [f for f in files if not f.endswith(".aux.xml")]))


def _same_file(path: str, facts: dict) -> bool:
    """True when `path` is still the file `facts` describe: same size and time, or same size and
    SHA-256 (a copy of the file that kept its content but not its time)."""
    if path.startswith("/vsi"):
        return file_facts(path) == facts
    size, mtime = _stat(Path(path))
    if size != facts.get("size"):
        return False
    if mtime == facts.get("mtime_ns"):
        return True
    return facts.get("sha256") is not None and _sha256(Path(path)) == facts["sha256"]


# --- the manifest -------------------------------------------------------------------------------

class Manifest:
    """A JSON-lines record of a batch: one line per scene event ("done", "failed", "cancelled").

    Lines are appended and flushed to disk one at a time; the last line of a scene says where it
    stands. A line cut short by a crash is ignored on reading. While a batch runs it holds an
    exclusive lock on the file, so two batches cannot write one manifest.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        self._fh = None

    def read(self) -> dict[str, dict]:
        """{scene: its last record}."""
        last: dict[str, dict] = {}
        if not self.path.is_file():
            return last
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "scene" in record:
                last[record["scene"]] = record
        return last

    def __enter__(self) -> "Manifest":
        if not self.path.parent.is_dir():
            raise DampInputError(f"The manifest's folder {self.path.parent} does not exist; create it first.")
        self._fh = open(self.path, "a", encoding="utf-8")
        try:
            if fcntl is not None:
                fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise DampInputError(f"Another batch is writing {self.path}; wait for it to finish or give "
                                 "another --manifest.") from None
        if self._fh.tell() and not self.path.read_bytes().endswith(b"\n"):
            self._fh.write("\n")  # end a line cut short by a crash, so the next record starts clean
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()
        self._fh = None

    def append(self, record: dict) -> None:
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


def is_complete(record: dict | None, job: SceneJob, settings: dict) -> bool:
    """True when the manifest's last record of the scene says it is done with these settings and
    its input and outputs are the files it records."""
    if not record or record.get("state") != "done" or record.get("output") != job.output:
        return False
    if record.get("settings") != settings:
        return False
    files = {**record.get("inputs", {}), **record.get("outputs", {})}
    return bool(record.get("outputs")) and all(_same_file(path, facts) for path, facts in files.items())


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


# --- on the worker -----------------------------------------------------------------------------

_MODELS: dict[tuple, Any] = {}
_MODELS_LOCK = threading.Lock()


def _worker_model(path: str, device: str, threads: int):
    """The model of this worker process, loaded on its first scene and kept for the next ones."""
    import torch
    from osgeo import gdal

    from .checkpoint import load_model

    torch.set_num_threads(threads)
    if "GDAL_CACHEMAX" not in os.environ:
        gdal.SetCacheMax(GDAL_CACHE_MB * 1024 * 1024)
    key = (path, device, *_stat(Path(path)))
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
    """Restore one scene with `restore_raster` and return its manifest record (runs on a worker)."""
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


# --- on the client -----------------------------------------------------------------------------

def default_workers(threads: int = 1) -> int:
    """Worker processes for a machine: its usable cores divided by the torch threads of each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, threads))


@contextmanager
def connect(scheduler=None, workers: int | None = None) -> Iterator[tuple[Any, int]]:
    """(Dask client, workers) for a batch: an embedded LocalCluster of `workers` single-threaded
    processes, or the cluster at `scheduler` (an address, a cluster object, or a Client, kept open).

    The embedded cluster sets the scheduler's allowed-failures to 0, so a worker that dies fails
    its scene at once and `restore_batch` decides about the retry (and records it). Its workers log
    nothing (every failure is reported, with its traceback, in the manifest), and run without the
    MALLOC_TRIM_THRESHOLD_ that Dask sets by default and without its profiler (TRIM_SETTING,
    PROFILE_SETTING): each costs torch a good part of its speed.
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise DampInputError(f"Batch restoration needs Dask distributed ({exc}); install it with: "
                             "pip install 'dask[distributed]'") from None
    if isinstance(scheduler, Client):
        yield scheduler, len(scheduler.scheduler_info()["workers"])
        return
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise DampInputError(f"Cannot reach the Dask scheduler {scheduler} ({exc}); check the address "
                                 "(tcp://host:8786) and that the scheduler runs.") from None
        with client:
            yield client, len(client.scheduler_info()["workers"])
        return
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 0, TRIM_SETTING: None,
                              PROFILE_SETTING: False}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=DASHBOARD, silence_logs=logging.CRITICAL)
    except RuntimeError as exc:  # a worker process that cannot start (its Python lacks damp_engine, ...)
        raise DampInputError(f"Cannot start {workers} local Dask worker process(es) ({exc}); check that "
                             f"'{sys.executable} -c \"import damp_engine, distributed\"' works, or give "
                             "the address of a running scheduler.") from None
    with cluster, Client(cluster) as client:
        yield client, workers


def _slow_settings() -> list[str]:
    """What slows torch down in this worker process: Dask's malloc trimming, its profiler."""
    import dask

    found = [TRIM_VARIABLE] if os.environ.get(TRIM_VARIABLE) else []
    return found + (["the Dask profiler"] if dask.config.get(PROFILE_SETTING, True) else [])


def dashboard_address(client) -> str | None:
    """The address of the scheduler's dashboard, None when it serves none (bokeh missing)."""
    services = client.scheduler_info().get("services", {})
    return client.dashboard_link if "dashboard" in services else None


def restore_batch(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                  workers: int | None = None, scheduler=None, manifest: str | os.PathLike | None = None,
                  retries: int = DEFAULT_RETRIES, threads: int = 1, model=None, tile: int = DEFAULT_TILE,
                  halo: int = DEFAULT_HALO, batch: int = DEFAULT_BATCH, device: str = "auto",
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
                slow = sorted({what for found in client.run(_slow_settings).values() for what in found})
                if slow:
                    log(f"The workers run with {' and '.join(slow)}, which slow torch down by up to 2.4 times on a "
                        f"CPU; start them with the Dask settings {TRIM_SETTING}: null and {PROFILE_SETTING}: "
                        "false (see the README).")
            run.execute(client, todo, cancelled)
            return run.report(out, clock, n, link)


def _check_batch_settings(tile: int, halo: int, batch: int, prompt_scope: str, retries: int, threads: int,
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
