"""How far each degradation moves a scene's normalised degradation prompt away from the clean scene,
and how much of the input the prompt-gated skip then lets through.

For every test scene (centre crop) and task of the quality suite, the prompt of the degraded
cube is normalised with the model's stored shift/scale (what the network's prompt embedding
sees) and its Euclidean distance to the clean cube's normalised prompt is printed, per task as
the mean over scenes. A degradation whose distance is small next to the others' is one the
routers can hardly tell from a clean image. The skip share is the mean over bands and views of
`SkipGate`'s g(e) for that prompt: the part of the input the output keeps as it is. Run from the
repository root::

    .venv/bin/python -m bench.prompt_separation [--model M] [--crop 128]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from damp_engine.checkpoint import load_model
from damp_engine.degrade import degrade
from damp_engine.evaluation import TASKS, case_seed, load_reference, scene_files
from damp_engine.spectral import view_prompts

DEFAULT_SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsi" / "test"


def prompt_and_skip(net, cube) -> tuple[torch.Tensor, float]:
    """The scene's normalised prompt (mean over its network views of (prompt - shift) / scale) and
    the mean skip share g(e) over its views and bands."""
    with torch.no_grad():
        raw = view_prompts(torch.from_numpy(cube[None]), net.preset.bands)[0]
        skip = net.skip_gate(net.embed_prompt((raw - net.dp_shift) / net.dp_scale)).mean()
    return ((raw - net.dp_shift) / net.dp_scale).mean(dim=0), float(skip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model weights (default: the bundled model)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop in pixels (default 128)")
    parser.add_argument("--scenes", nargs="+", default=[str(DEFAULT_SCENES)], help="rasters or folders")
    args = parser.parse_args(argv)
    net = load_model(args.model, device="cpu").net
    rows: dict[str, list[tuple[float, float]]] = {t.name: [] for t in TASKS}
    for path in scene_files(args.scenes):
        clean = load_reference(path, args.crop)
        reference, _ = prompt_and_skip(net, clean)
        for task in TASKS:
            degraded, _ = degrade(clean, task.kind, case_seed(0, path.stem, task), **task.params)
            prompt, skip = prompt_and_skip(net, degraded)
            rows[task.name].append((float(torch.dist(prompt, reference)), skip))
    print(f"{'task':<22}{'distance from clean':>22}{'skip share':>12}   (means over scenes)")
    for task in TASKS:
        distance, skip = (sum(v) / len(v) for v in zip(*rows[task.name]))
        print(f"{task.name:<22}{distance:>22.2f}{skip:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
