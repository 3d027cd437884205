"""Benchmark batch restoration on Dask: scenes per hour with 1 and 2 worker processes.

`restore_batch` (embedded LocalCluster, one torch thread per worker, the bundled model) restores
the same seeded synthetic scenes (31 bands, 256 × 256, Int16) once per worker count, side by side
in one run; the wall time includes starting the cluster and loading the model on each worker,
as a user's batch pays it. Prints a Markdown summary and writes bench/results/batch.json.
Run: `.venv/bin/python bench/bench_batch.py [--scenes N]`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_restore import write_synthetic  # noqa: E402  (the same rasters as the throughput bench)

from damp_engine.batch import restore_batch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "batch.json"
BANDS, SIZE = 31, 256
WORKER_COUNTS = (1, 2)


def run(scenes: list[Path], out: Path, workers: int) -> dict:
    """Restore `scenes` into `out` with `workers` processes; the measured rates."""
    start = time.perf_counter()
    report = restore_batch(scenes, out, workers=workers, threads=1)
    wall = time.perf_counter() - start
    done = report.count("done")
    if done != len(scenes):
        raise SystemExit(f"{len(scenes) - done} scene(s) did not finish with {workers} worker(s).")
    return {"workers": workers, "scenes": done, "seconds": round(wall, 2),
            "scenes_per_hour": round(done / wall * 3600, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8, help="scenes per run (default 8)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scenes = [write_synthetic(work / f"scene_{i:02d}.tif", BANDS, SIZE) for i in range(args.scenes)]
        runs = [run(scenes, work / f"out_{n}", n) for n in WORKER_COUNTS]
    speedup = runs[1]["scenes_per_hour"] / runs[0]["scenes_per_hour"]
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "platform": platform.platform(),
              "cpu_cores": os.cpu_count(), "torch": torch.__version__,
              "scene": f"{BANDS} bands x {SIZE} x {SIZE} Int16, synthetic (bench_restore.pattern)",
              "runs": runs, "speedup_2_over_1": round(speedup, 2)}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n### Batch restoration ({args.scenes} scenes of {result['scene']}, {os.cpu_count()} cores)\n")
    print("| workers | seconds | scenes per hour |\n|---|---|---|")
    for r in runs:
        print(f"| {r['workers']} | {r['seconds']} | {r['scenes_per_hour']} |")
    shown = RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS
    print(f"\n2 workers / 1 worker: {speedup:.2f} x; wrote {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
