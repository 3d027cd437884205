"""Keep this process's environment variables as they were across a call that changes them.

Dask's nannies and torch's launcher set OMP_NUM_THREADS=1 (and the like) in the process that
starts them; left behind, every process started from it later (a loader worker, a `damp` child
of QGIS) would compute with another thread count than before.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def kept_environment() -> Iterator[None]:
    """Within the block anything may change ``os.environ``; at its end it is as it was."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
