"""The `damp` command: the engine's public API from the shell.

Every failure prints one line on stderr and leaves no file behind: errors a user can fix
(bad input, a damaged file, an unwritable folder, not enough memory) exit with code 2; Ctrl-C
and a cancel exit with 130, SIGTERM (and SIGHUP) with 143, after the run has removed its
temporary files; an unexpected error (a bug) exits with 1 and prints the traceback only when
DAMP_TRACEBACK=1 is set.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from . import DEFAULT_HALO, DEFAULT_TILE, MAX_HALO, MIN_HALO, MIN_TILE
from .limits import DEFAULT_BATCH
from .errors import DampCancelled, DampInputError, one_line

EPILOG = "Run 'damp COMMAND --help' for a command's options and an example."


def _print_table(rows: dict, fmt: str = "{:>10.4f}") -> None:
    for key, value in rows.items():
        text = fmt.format(value) if isinstance(value, float) else f"{value:>10}"
        print(f"{key:<8}{text}")


def cmd_prompt(args: argparse.Namespace) -> None:
    """The scene prompt and its reading (``damp_engine.reading.read_raster``): JSON, or the
    reading's one sentence first, then the metrics."""
    from .names import METRIC_MEANINGS
    from .reading import read_raster
    from .scene import prompt_raster

    result = prompt_raster(args.input)
    reading = read_raster(args.input)
    if args.json:
        print(json.dumps({**result.to_dict(), "reading": reading.to_dict()}, indent=2))
        return
    print(reading.sentence)
    print(f"{args.input}: {result.bands} bands, {result.width} x {result.height} pixels, "
          f"{result.tiles} sample tile(s)")
    for name, value in result.metrics.items():
        print(f"  {name.upper():<5} {value:>9.4f}  {METRIC_MEANINGS[name]}")


def cmd_degrade(args: argparse.Namespace) -> None:
    from . import degrade_raster, parse_parameters

    record = degrade_raster(args.input, args.output, args.kind, seed=args.seed, **parse_parameters(args.param))
    print(json.dumps(record.to_dict()) if args.json else f"wrote {args.output}: {record.to_dict()}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .degradation_scores import evaluate_degraded_part
    from .scene import evaluate_rasters

    from .quality import raster_convention

    scores = evaluate_rasters(args.reference, args.test, data_range=args.data_range)
    convention = raster_convention(scores["peak"], given=args.data_range is not None)
    part = evaluate_degraded_part(args.reference, args.test, data_range=args.data_range)  # None without a record
    if args.json:
        print(json.dumps({**scores, "convention": convention,
                          **({"degraded_part": part.to_dict()} if part else {})}, indent=2))
        return
    _print_table({key: scores[key] for key in ("psnr", "ssim", "sam", "ergas")})
    print(convention)
    if part:
        print(f"degraded part only ({part.describe()}):")
        _print_table(part.scores)


def cmd_model_info(args: argparse.Namespace) -> None:
    from .model import model_info

    info = model_info(args.preset)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:<18}{value}")


def _tiling_options(args: argparse.Namespace) -> dict:
    from .raster import bound_gdal_cache

    bound_gdal_cache(args.input)
    return {"model": args.model, "tile": args.tile, "halo": args.halo, "batch": args.batch, "device": args.device,
            "report": args.report, "prompt_scope": "tile" if args.tile_prompts else "scene",
            "progress": ProgressBar() if sys.stderr.isatty() else None}


class ProgressBar:
    """A tqdm bar on stderr, fed the fraction done (what the engine's `progress` callbacks give)."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")

    def __call__(self, fraction: float) -> None:
        self.bar.update(100 * min(max(fraction, 0.0), 1.0) - self.bar.n)
        if fraction >= 1:
            self.bar.close()


def cmd_restore(args: argparse.Namespace) -> None:
    from . import parse_bands, restore_raster

    report = restore_raster(args.input, args.output, mask=args.mask, bad_bands=parse_bands(args.bad_bands),
                            routing_map=args.routing_map, prompt_map=args.prompt_map, **_tiling_options(args))
    print(report.summary())


def cmd_restore_batch(args: argparse.Namespace) -> int:
    """Restore many scenes on a Dask cluster; exit 1 naming the scenes that failed, 130 on a cancel."""
    from tqdm import tqdm

    from . import parse_bands, restore_batch

    bar = tqdm(total=0, unit="scene", file=sys.stderr, disable=None)

    def on_scene(result, done: int, total: int) -> None:
        bar.total = total
        bar.update(1)
        if result.state == "failed":
            bar.write(f"failed: {result.scene}: {result.error}", file=sys.stderr)

    try:
        report = restore_batch(
            args.inputs, args.out, workers=args.workers, scheduler=args.scheduler, manifest=args.manifest,
            retries=args.retries, threads=args.threads, model=args.model, tile=args.tile, halo=args.halo,
            batch=args.batch, device=args.device, bad_bands=parse_bands(args.bad_bands),
            prompt_scope="tile" if args.tile_prompts else "scene", masks=args.mask, reports=args.report,
            routing_maps=args.routing_map, prompt_maps=args.prompt_map, on_scene=on_scene,
            log=lambda line: bar.write(line, file=sys.stderr))
    except DampCancelled as exc:  # Ctrl-C and SIGTERM too: the finished scenes are kept
        bar.close()
        print(f"damp: {exc}", file=sys.stderr)
        return 143 if isinstance(exc.__cause__, Terminated) else 130
    bar.close()
    print(report.summary())
    for line in report.failure_lines():
        print(f"damp: {line}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_upscale(args: argparse.Namespace) -> None:
    from . import upscale_raster

    report = upscale_raster(args.input, args.output, args.factor, **_tiling_options(args))
    print(report.summary())


def cmd_evaluate_suite(args: argparse.Namespace) -> None:
    from .evaluation import run_suite

    rows = run_suite(model=args.model, scenes=args.scenes, crop=args.crop, tasks=args.tasks, seed=args.seed)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'scene':<34}{'task':<22}{'input PSNR/SSIM/SAM':>26}{'DAMP PSNR/SSIM/SAM':>26}")
    for row in rows:
        cells = [f"{row[k]['psnr']:6.2f} {row[k]['ssim']:.3f} {row[k]['sam']:6.2f}" for k in ("input", "damp")]
        print(f"{row['scene']:<34}{row['label']:<22}{cells[0]:>26}{cells[1]:>26}")


def cmd_train(args: argparse.Namespace) -> int | None:
    """Train here, or in N data-parallel processes (``--nproc N``) that each run these arguments."""
    from . import distributed
    from .checkpoint import resolve_device
    from .train import TrainConfig, train

    if args.nproc < 1:
        raise DampInputError(f"--nproc is a number of processes, at least 1, not {args.nproc}.")
    if not args.noise_weight > 0:
        raise DampInputError(f"--noise-weight is a positive weight, not {args.noise_weight}.")
    if args.nproc > 1 and not distributed.launched():
        return distributed.launch(args.nproc, args.command_line[1:])
    cfg = TrainConfig(data=args.data, out=args.out, preset=args.preset, steps=args.steps, batch=args.batch,
                      crop=args.crop, lr=args.lr, seed=args.seed, checkpoint_minutes=args.checkpoint_minutes,
                      device=args.device, threads=args.threads, base_model=args.init_from,
                      loader_workers=args.loader_workers, noise_weight=args.noise_weight)
    with distributed.process_group(resolve_device(args.device)):
        train(cfg, resume=args.resume)


def _degrade_help() -> str:
    return ("kinds: gaussian_noise (sigma), noniid_noise (sigmas), poisson (scale), gaussian_blur (ksize), "
            "motion_blur (size, angle), sr (factor), inpaint (fraction), band_loss (fraction), "
            "stripes, deadlines, impulse (band_fraction, amplitude/fraction), complex (extra)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="damp", description="DAMP: degradation-aware hyperspectral image restoration.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, summary: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary, epilog=f"example:\n  {example}",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = add("prompt", cmd_prompt, "Read a raster's degradation (one sentence) and print its six prompt metrics.",
            "damp prompt scene.tif --json")
    p.add_argument("input", help="hyperspectral raster (GeoTIFF, ENVI, VRT; at least 3 bands)")
    p.add_argument("--json", action="store_true",
                   help="print JSON (keys hfer stu scm scs gstd scc bands width height tiles, and reading: "
                        "families, top, present, severity, sentence, evidence, metrics)")

    p = add("degrade", cmd_degrade, "Write a degraded copy of a raster (seeded) for tests and benchmarks.",
            "damp degrade clean.tif noisy.tif --kind gaussian_noise --param sigma=50 --seed 1")
    p.add_argument("input", help="clean raster")
    p.add_argument("output", help="degraded raster to write (.tif or .bsq/.bil/.bip)")
    p.add_argument("--kind", required=True, help=_degrade_help())
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="parameters of the kind (repeatable; or several in one, e.g. 'sigmas=[10, 30], extra=stripes')")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")

    p = add("evaluate", cmd_evaluate, "Score a raster against a reference: PSNR, SSIM, SAM, ERGAS.",
            "damp evaluate clean.tif restored.tif --json")
    p.add_argument("reference", help="clean reference raster")
    p.add_argument("test", help="raster to score (same bands, rows and columns)")
    p.add_argument("--data-range", type=float, default=None, metavar="V",
                   help="the peak of PSNR, e.g. 1 for reflectance or 65535 for 16-bit counts (default: the "
                        "reference's maximum); both rasters are divided by it, neither is clipped")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("train", cmd_train, "Train a DAMP model on a folder of clean rasters (degradations are simulated).",
            "damp train ../shared/data/hsi/train --out runs/tiny/damp_tiny.safetensors --preset tiny --resume")
    p.add_argument("data", nargs="+", help="rasters or folders of rasters (any band count)")
    p.add_argument("--out", required=True, help="weights to write (*.safetensors; the card goes beside it as .json)")
    p.add_argument("--preset", default="tiny", help="network preset (tiny, small, paper; default tiny)")
    p.add_argument("--steps", type=int, default=20000, help="optimiser steps in total (default 20000)")
    p.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--crop", type=int, default=64, help="crop size in pixels (default 64)")
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (default 5e-4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0, help="minutes between checkpoints (default 5)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train (default auto)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--loader-workers", type=int, default=1,
                   help="background processes preparing batches ahead of the network (default 1; 0: none)")
    p.add_argument("--noise-weight", type=float, default=1.0,
                   help="draw each noise kind (Gaussian, complex) this many times as often as each other "
                        "kind (default 1: the paper's equal mix)")
    p.add_argument("--resume", action="store_true", help="continue from --out and its optimiser state if present")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from these weights (*.safetensors) with a fresh optimiser and schedule")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="train data-parallel in N processes, a GPU each on CUDA; --batch is the global batch "
                        "(default 1)")

    def tiling_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", default=None, help="model weights (*.safetensors; default: the bundled model)")
        p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                       help=f"tile side in pixels, at least {MIN_TILE} (default {DEFAULT_TILE})")
        p.add_argument("--halo", type=int, default=DEFAULT_HALO,
                       help=f"context pixels read around each tile, {MIN_HALO} to {MAX_HALO} (default {DEFAULT_HALO})")
        p.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                       help="tiles per forward pass (default: 4 on a GPU, 1 on the CPU, where one at a time is faster)")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="default auto (CUDA if present)")
        p.add_argument("--report", default=None, help="write a JSON report (prompt, routing, timings) here")
        p.add_argument("--tile-prompts", action="store_true",
                       help="route each tile by its own degradation prompt (default: the scene's, seamless)")

    p = add("restore", cmd_restore, "Restore a hyperspectral raster of any size and band count, tile by tile.",
            "damp restore noisy.tif restored.tif --report report.json --routing-map routing.tif")
    p.add_argument("input", help="degraded raster (GeoTIFF, ENVI, VRT; at least 3 bands)")
    p.add_argument("output", help="restored raster to write (.tif or .bsq/.bil/.bip); never the input")
    tiling_args(p)
    p.add_argument("--routing-map", default=None, help="raster of each tile's dominant expert per decoder stage")
    p.add_argument("--prompt-map", default=None, help="six-band raster of each tile's degradation prompt")
    p.add_argument("--mask", default=None, help="raster on the same grid; non-zero pixels are filled (inpainting)")
    p.add_argument("--bad-bands", default=None, help="1-based bands and ranges to regenerate, e.g. 12,13,80-85")

    p = add("restore-batch", cmd_restore_batch,
            "Restore many rasters on a Dask cluster (local processes by default); reruns do only what is missing.",
            "damp restore-batch archive/*.tif --out restored --workers 4")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="rasters, folders, glob patterns, .txt lists (one path a line) or GDAL paths (/vsicurl/...)")
    p.add_argument("--out", required=True, help="folder of the restored rasters (each named as its input; created)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: one per core, at most one per scene)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler instead of the local cluster, e.g. tcp://node1:8786")
    p.add_argument("--manifest", default=None, help="JSON-lines record of every scene (default OUT/manifest.jsonl)")
    p.add_argument("--retries", type=int, default=2, help="new attempts for a scene that fails (default 2)")
    tiling_args(p)
    for action in p._actions:
        if action.dest == "report":
            action.help = "folder for each scene's JSON report (NAME.json)"
    p.add_argument("--routing-map", default=None, metavar="FOLDER", help="folder for each scene's routing map")
    p.add_argument("--prompt-map", default=None, metavar="FOLDER", help="folder for each scene's prompt map")
    p.add_argument("--mask", default=None, metavar="FOLDER",
                   help="folder of masks, one per scene with the scene's file name (non-zero pixels are filled)")
    p.add_argument("--bad-bands", default=None,
                   help="1-based bands and ranges to regenerate in every scene, e.g. 12,13,80-85")

    p = add("upscale", cmd_upscale, "Super-resolve a raster onto a grid 2 or 4 times finer, restored by the model.",
            "damp upscale coarse.tif fine.tif --factor 2")
    p.add_argument("input", help="raster to upscale")
    p.add_argument("output", help="raster to write on the finer grid")
    p.add_argument("--factor", type=int, choices=[2, 4], required=True, help="2 or 4")
    tiling_args(p)

    p = add("evaluate-suite", cmd_evaluate_suite,
            "Score the model on every restoration task (seeded degradations of clean test scenes).",
            "damp evaluate-suite ../shared/data/hsi/test --crop 128")
    p.add_argument("scenes", nargs="*", help="clean rasters or folders (default: the bundled sample raster)")
    p.add_argument("--model", default=None, help="model weights (default: the bundled model)")
    p.add_argument("--crop", type=int, default=None, help="score the centre crop of this size only")
    p.add_argument("--tasks", nargs="*", default=None, help="task names (default: all)")
    p.add_argument("--seed", type=int, default=0, help="degradation seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON rows")

    p = add("model-info", cmd_model_info, "Print a preset's parameter count and FLOPs per pixel.",
            "damp model-info tiny")
    p.add_argument("preset", help="preset name (tiny, small, paper)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return parser


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP, so that the run
    unwinds as it does on Ctrl-C and deletes its temporary files."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def _termination_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `Terminated` (main thread only; elsewhere a no-op)."""
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            previous[signum] = signal.signal(signum, _raise_terminated)
        except (ValueError, OSError):  # not the main thread, or not allowed here
            pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _fail(message: object, code: int) -> int:
    print(f"damp: {one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = argv  # what `damp train --nproc N` hands on to its N processes
    # Overflow or NaN in intermediate sums of a damaged raster is handled where it matters; numpy's
    # warnings about it would only print lines that are not the one sentence the user gets.
    with _termination_as_interrupt(), np.errstate(all="ignore"):
        try:
            status = args.func(args)
        except DampInputError as exc:
            return _fail(f"error: {exc}", 2)
        except DampCancelled:
            return _fail("cancelled; no output was written.", 130)
        except Terminated:
            return _fail("terminated; no output was written.", 143)
        except KeyboardInterrupt:
            return _fail("interrupted; no output was written.", 130)
        except MemoryError:
            return _fail("error: not enough memory for this run; use a smaller --tile or --batch, or crop the "
                         "raster first. No output was written.", 2)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return _fail(f"error: {where}{(exc.strerror or str(exc)).lower()}; no output was written.", 2)
        except Exception as exc:  # a bug: one line, the traceback on request
            if os.environ.get("DAMP_TRACEBACK"):
                raise
            return _fail(f"internal error: {type(exc).__name__}: {exc}. This is a bug in DAMP; rerun with "
                         "DAMP_TRACEBACK=1 to see where, and report it. No output was written.", 1)
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
