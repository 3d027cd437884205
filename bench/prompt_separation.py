"""How far each degradation moves a scene's normalised degradation prompt away from the clean scene.

For every test scene (centre crop) and task of the quality suite, the prompt of the degraded
cube is normalised with the model's stored shift/scale (what the network's prompt embedding
sees) and its Euclidean distance to the clean cube's normalised prompt is printed, per task as
the mean over scenes. A degradation whose distance is small next to the others' is one the
routers can hardly tell from a clean image. Run from the repository root::

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


def normalised_prompt(net, cube) -> torch.Tensor:
    """The scene's normalised prompt: the mean over its network views of (prompt - shift) / scale."""
    with torch.no_grad():
        raw = view_prompts(torch.from_numpy(cube[None]), net.preset.bands)[0]
    return ((raw - net.dp_shift) / net.dp_scale).mean(dim=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model weights (default: the bundled model)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop in pixels (default 128)")
    parser.add_argument("--scenes", nargs="+", default=[str(DEFAULT_SCENES)], help="rasters or folders")
    args = parser.parse_args(argv)
    net = load_model(args.model, device="cpu").net
    distances: dict[str, list[float]] = {t.name: [] for t in TASKS}
    for path in scene_files(args.scenes):
        clean = load_reference(path, args.crop)
        reference = normalised_prompt(net, clean)
        for task in TASKS:
            degraded, _ = degrade(clean, task.kind, case_seed(0, path.stem, task), **task.params)
            distances[task.name].append(float(torch.dist(normalised_prompt(net, degraded), reference)))
    print(f"{'task':<22}{'distance from clean (mean over scenes)':>40}")
    for task in TASKS:
        values = distances[task.name]
        print(f"{task.name:<22}{sum(values) / len(values):>40.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
