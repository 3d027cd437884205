"""How far each degradation moves a scene's normalised degradation prompt away from the clean scene.

For every test scene (centre crop) and task of the quality suite, the prompt of the degraded
cube (measured as `damp restore` measures a scene: the median over 64-pixel sample windows) is
turned into the network's features (`prompt_features`: log10 of HFER, SCM, SCS, GSTD) and
normalised with the model's stored shift/scale, and its Euclidean distance to the clean cube's is
printed, per task as the mean over scenes. A degradation whose distance is small next to the
others' is one the routers can hardly tell from a clean image. Run from the repository root::

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
from damp_engine.model import prompt_features
from damp_engine.scene_analysis import prompt_input, sample_windows
from damp_engine.validity import validity_mask

DEFAULT_SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsi" / "test"


def scene_prompt(cube) -> torch.Tensor:
    """(1, 6) raw prompt of a cube, the median over its 64-pixel sample windows."""
    from damp_engine.prompt import compute_prompt

    c, h, w = cube.shape
    lost = (cube == 0).reshape(c, -1).all(axis=1)
    rows = []
    for x0, y0, ww, hh in sample_windows(w, h):
        window = cube[:, y0:y0 + hh, x0:x0 + ww]
        ok, void = validity_mask(window, window == window, lost)
        rows.append(compute_prompt(prompt_input(window, ok, void)).values[0])
    return torch.stack(rows).median(dim=0).values[None]


def normalised_prompt(net, cube) -> torch.Tensor:
    """The scene's prompt features, normalised as the network's embedding sees them."""
    return ((prompt_features(scene_prompt(cube)) - net.dp_shift) / net.dp_scale)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model weights (default: the bundled model)")
    parser.add_argument("--crop", type=int, default=128, help="centre crop in pixels (default 128)")
    parser.add_argument("--scenes", nargs="+", default=[str(DEFAULT_SCENES)], help="rasters or folders")
    args = parser.parse_args(argv)
    net = load_model(args.model, device="cpu").net
    rows: dict[str, list[float]] = {t.name: [] for t in TASKS}
    for path in scene_files(args.scenes):
        clean = load_reference(path, args.crop)
        reference = normalised_prompt(net, clean)
        for task in TASKS:
            degraded, _ = degrade(clean, task.kind, case_seed(0, path.stem, task), **task.params)
            rows[task.name].append(float(torch.dist(normalised_prompt(net, degraded), reference)))
    print(f"{'task':<22}{'distance from clean':>22}   (mean over scenes)")
    for task in TASKS:
        print(f"{task.name:<22}{sum(rows[task.name]) / len(rows[task.name]):>22.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
