"""The Dask cluster a batch runs on: an embedded LocalCluster sized to the machine, or a running
scheduler; and the Dask settings that would slow torch down on its workers."""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from .errors import DampInputError
from .environment import kept_environment

DASHBOARD = ":8787"          # Dask's usual dashboard port (another one is picked if it is taken)
# Dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold at
# 128 kB: every tensor is then mapped and zeroed afresh, and a scene restores 2 to 2.4 times slower.
TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
TRIM_VARIABLE = "MALLOC_TRIM_THRESHOLD_"
# The worker's statistical profiler samples every thread's stack each 10 ms: 30 % of a scene's time.
PROFILE_SETTING = "distributed.worker.profile.enabled"


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
    with kept_environment():  # the nannies set OMP_NUM_THREADS=1 and the like in this process
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


def slow_settings() -> list[str]:
    """What slows torch down in this worker process: Dask's malloc trimming, its profiler."""
    import dask

    found = [TRIM_VARIABLE] if os.environ.get(TRIM_VARIABLE) else []
    return found + (["the Dask profiler"] if dask.config.get(PROFILE_SETTING, True) else [])


def dashboard_address(client) -> str | None:
    """The address of the scheduler's dashboard, None when it serves none (bokeh missing)."""
    services = client.scheduler_info().get("services", {})
    return client.dashboard_link if "dashboard" in services else None
