"""Quality suite: degraded input vs the best classical baseline vs DAMP, task by task.

Runs `damp_engine.evaluation.run_suite` (input and DAMP scores for every scene × task, fixed
seeds) and adds, through its ``on_case`` hook, every classical method of `bench/baselines.py`
for the task. Per task the best classical method is the one with the highest PSNR averaged over
the scenes (one method per row, not the best per scene). Writes a Markdown table and the full
per-scene, per-method results as JSON beside it.

BM4D runs only with ``--bm4d``: it takes minutes per 31 × 256 × 256 cube on two cores.

Run from the repository root::

    .venv/bin/python -m bench.quality_suite                   # defaults: test scenes, crop 256
    .venv/bin/python -m bench.quality_suite --crop 64 --scenes ../shared/data/hsi/test/cave_balloons.tif
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baselines import CLOSED_FORM, baselines_for
from damp_engine.checkpoint import load_model
from damp_engine.evaluation import (TASKS, Case, load_reference, mean_scores, restore, run_suite, scene_files, score,
                                    summarise)
from damp_engine.quality import psnr
from damp_engine.training_data import file_sha256

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENES = [ROOT.parent / "shared" / "data" / "hsi" / "test", ROOT.parent / "shared" / "data" / "hsi" / "test_rs"]
DEFAULT_OUT = ROOT / "bench" / "results" / "quality.md"
DEFAULT_CROP = 256  # the full 512² suite takes well over 20 minutes on two shared CPU cores
METRICS = ("psnr", "ssim", "sam")
CLEAN_TARGET = 40.0  # dB: a clean input must come back this close to itself


def clean_identity(model, scenes: list[str], crop: int | None) -> dict[str, float]:
    """{scene: PSNR of the restored clean scene against itself}: what restoring an undegraded
    raster costs it (through the same path as every case)."""
    out = {}
    for path in scene_files(scenes):
        clean = load_reference(path, crop)
        out[path.stem] = round(psnr(clean, restore(model, clean).clip(0.0, 1.0)), 2)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="DAMP .safetensors model (default: the bundled one)")
    parser.add_argument("--scenes", nargs="+", default=[str(p) for p in DEFAULT_SCENES],
                        help="raster files or folders (default: ../shared/data/hsi/test and test_rs)")
    parser.add_argument("--crop", type=int, default=DEFAULT_CROP,
                        help=f"centre crop in pixels, 0 for whole scenes (default {DEFAULT_CROP})")
    parser.add_argument("--tasks", nargs="+", default=None, choices=[t.name for t in TASKS], metavar="TASK",
                        help="tasks to run (default: all): " + ", ".join(t.name for t in TASKS))
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--bm4d", action="store_true", help="also run BM4D on the noise tasks (slow)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown output; JSON goes beside it")
    return parser.parse_args(argv)


def add_baselines(use_bm4d: bool, log: Callable[[str], None]) -> Callable[[Case, dict], None]:
    """The ``on_case`` hook: score every classical method of the case's task into the row."""
    def hook(case: Case, row: dict) -> None:
        row["classical"] = {}
        for name, method in baselines_for(case.task.kind, bm4d=use_bm4d).items():
            start = time.perf_counter()
            estimate = method(case.degraded, case.record)
            seconds = round(time.perf_counter() - start, 3)
            row["classical"][name] = {**score(case.clean, estimate, case.record), "seconds": seconds}
        best = max(row["classical"].items(), key=lambda item: item[1]["psnr"])
        log(f"{case.scene:<28} {case.task.name:<18} input {row['input']['psnr']:6.2f}  "
            f"DAMP {row['damp']['psnr']:6.2f}  best classical {best[1]['psnr']:6.2f} ({best[0]})")
    return hook


def summarise_with_baselines(rows: list[dict]) -> list[dict]:
    """The engine's per-task means plus each classical method's, the best one, DAMP's PSNR gap to it,
    what the network adds to its closed-form start, whether the task's target is met, and the
    cases where DAMP came out below its input."""
    summary = summarise(rows)
    for entry in summary:
        group = [r for r in rows if r["task"] == entry["task"]]
        methods = {name: mean_scores([r["classical"][name] for r in group]) for name in group[0]["classical"]}
        best = max(methods, key=lambda n: methods[n]["psnr"])
        closed = next((n for n in methods if n.endswith(CLOSED_FORM)), None)
        gap = entry["damp"]["psnr"] - methods[best]["psnr"]
        met = gap >= 0 if entry["zero_shot"] else (gap >= 1 and entry["damp"]["sam"] < methods[best]["sam"])
        worse = [r["scene"] for r in group if r["damp"]["psnr"] < r["input"]["psnr"] - 1e-6]
        entry.update(classical=methods, best_classical=best, gap_psnr=gap, target_met=bool(met),
                     network_gain=None if closed is None else entry["damp"]["psnr"] - methods[closed]["psnr"],
                     below_input=worse)
    return summary


def scene_family(scene: str) -> str:
    """"CAVE" for the lab scenes of the CAVE database, "remote sensing" for the airborne ones."""
    return "CAVE" if scene.startswith("cave_") else "remote sensing"


def cell(scores: dict[str, float]) -> str:
    """"PSNR / SSIM / SAM" of a score dict."""
    return f"{scores['psnr']:.2f} / {scores['ssim']:.3f} / {scores['sam']:.2f}"


def machine() -> str:
    """One line describing where the suite ran."""
    return (f"{platform.node()} — {platform.platform()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def summary_table(summary: list[dict]) -> list[str]:
    """The main table: per task input, best classical, DAMP, the gap, what the network adds to its
    closed-form start, and whether the target (DESIGN: +1 dB and lower SAM; zero-shot: ≥) is met."""
    lines = ["| Task | Input | Best classical | DAMP | ΔPSNR DAMP − classical | network − closed form | target |",
             "|---|---|---|---|---|---|---|"]
    for s in summary:
        label = s["label"] + (" *(zero-shot)*" if s["zero_shot"] else "")
        best = s["classical"][s["best_classical"]]
        gain = "—" if s["network_gain"] is None else f"{s['network_gain']:+.2f}"
        lines.append(f"| {label} | {cell(s['input'])} | {cell(best)} ({s['best_classical']}) | "
                     f"{cell(s['damp'])} | {s['gap_psnr']:+.2f} | {gain} | {'met' if s['target_met'] else 'missed'} |")
    return lines


def markdown(meta: dict, summary: list[dict], rows: list[dict]) -> str:
    """The report: header, the main table, per-method PSNR, band-loss detail and per-scene rows."""
    lines = [
        "# DAMP quality suite",
        "",
        f"- Date: {meta['date']}; machine: {meta['machine']}; model device: {meta['device']}",
        f"- Model: `{meta['model']}` (sha256 `{meta['model_sha256']}`)",
        f"- Scenes: {', '.join(f'{s} {tuple(sh)}' for s, sh in meta['scenes'].items())}",
        f"- Crop: {meta['crop_note']}",
        f"- Seeds: base seed {meta['seed']}; case seed = (base + crc32(\"scene/task\")) mod 2^31",
        f"- BM4D: {'included' if meta['bm4d'] else 'not run (enable with --bm4d; minutes per 256² cube)'}",
        f"- Runtime: {meta['runtime_s'] / 60:.1f} min",
        "",
        "Cells are PSNR (dB) / SSIM / SAM (°), averaged over the scenes; conventions in "
        "`damp_engine/quality.py` (per-band PSNR and SSIM, data range 1, estimates clipped to [0, 1]). "
        "Best classical = the method with the highest mean PSNR for the task (list below); it uses "
        "the true kernel (deblurring), the true mask or lost bands, and the true σ or Poisson scale "
        "where it takes one (complex noise: σ estimated per band). Zero-shot tasks were never seen "
        "by DAMP in training. SAM skips pixels whose spectrum is all zero, so the inpainting input "
        "scores SAM 0 (its zeroed pixels have no angle, the others are exact).",
        "",
    ]
    lines += summary_table(summary)
    below = sum(len(s["below_input"]) for s in summary)
    lines += ["", f"Cases (scene × task) where DAMP scores below its input: {below} of {len(rows)}."]
    identity = meta.get("clean_identity")
    if identity:
        lines += ["", f"A clean scene restored, against itself (target ≥ {CLEAN_TARGET:.0f} dB): lowest "
                  f"{min(identity.values()):.2f} dB; " + ", ".join(f"{k} {v:.2f}" for k, v in identity.items()) + "."]
    for family in ("CAVE", "remote sensing"):
        subset = [r for r in rows if scene_family(r["scene"]) == family]
        if subset and len(subset) < len(rows):
            lines += ["", f"## {family} scenes only", ""] + summary_table(summarise_with_baselines(subset))
    lines += ["", "## PSNR of every classical method (mean over scenes)", "",
              "| Task | Method | PSNR | SSIM | SAM | seconds per scene |", "|---|---|---|---|---|---|"]
    for s in summary:
        for name, m in s["classical"].items():
            lines.append(f"| {s['label']} | {name} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['sam']:.2f} | "
                         f"{m['seconds']:.1f} |")
    lost = [s for s in summary if "psnr_lost_bands" in s["input"]]
    if lost:
        lines += ["", "## Band loss: PSNR of the lost bands only", "",
                  "Kept bands are exact in the input and in the interpolation (each band's PSNR is capped "
                  "at 100 dB), so the all-band mean above is dominated by them; DAMP also alters kept bands.",
                  "", "| Task | Input | Spectral linear interpolation | Best classical | DAMP |",
                  "|---|---|---|---|---|"]
        for s in lost:
            linear = s["classical"].get("spectral linear interpolation", {}).get("psnr_lost_bands", float("nan"))
            lines.append(f"| {s['label']} | {s['input']['psnr_lost_bands']:.2f} | {linear:.2f} | "
                         f"{s['classical'][s['best_classical']]['psnr_lost_bands']:.2f} | "
                         f"{s['damp']['psnr_lost_bands']:.2f} |")
    lines += ["", "## Per scene", "", "| Scene | Task | Input | Best classical (this scene) | DAMP | DAMP s |",
              "|---|---|---|---|---|---|"]
    for r in rows:
        name, best = max(r["classical"].items(), key=lambda item: item[1]["psnr"])
        extra = f" [{r['params']['extra']}]" if r["kind"] == "complex" else ""
        lines.append(f"| {r['scene']} | {r['label']}{extra} | {cell(r['input'])} | {cell(best)} ({name}) | "
                     f"{cell(r['damp'])} | {r['damp_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = load_model(args.model)
    crop = args.crop or None
    start = time.perf_counter()
    rows = run_suite(model, scenes=args.scenes, crop=crop, tasks=args.tasks, seed=args.seed,
                     on_case=add_baselines(args.bm4d, lambda line: print(line, file=sys.stderr, flush=True)))
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "device": str(model.device), "model": str(model.path),
        "model_sha256": file_sha256(model.path), "seed": args.seed, "bm4d": args.bm4d, "crop": crop,
        "crop_note": (f"centre {crop}×{crop} pixels (whole scene where smaller)" if crop else "whole scenes")
        + ("; the default, because the full 512² suite takes well over 20 minutes on 2 CPU cores"
           if crop == DEFAULT_CROP else ""),
        "scenes": {r["scene"]: r["shape"] for r in rows},
        "clean_identity": clean_identity(model, args.scenes, crop),
        "runtime_s": round(time.perf_counter() - start, 1),
    }
    summary = summarise_with_baselines(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(meta, summary, rows), encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1),
                                        encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.json').name} in {meta['runtime_s'] / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
