"""How far each degradation moves a scene's normalised degradation prompt away from the clean scene,
and how much of the input's out-of-subspace part the model then keeps.

For every test scene (centre crop) and task of the quality suite, the prompt of the degraded
cube (measured as `damp restore` measures a scene: the median over 64-pixel sample windows) is
turned into the network's features (`prompt_features`: log10 of HFER, SCM, SCS, GSTD) and
normalised with the model's stored shift/scale, and its Euclidean distance to the clean cube's is
printed, per task as the mean over scenes. A degradation whose distance is small next to the
others' is one the routers can hardly tell from a clean image. The complement share is the
`ComplementGate`'s g(e) for that prompt: the share of the input's out-of-subspace part the output
keeps (noise should go, detail of blurred or coarse inputs should stay). Run from the repository
root::

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
from damp_engine.scene_analysis import SAMPLE_WINDOW, prompt_input
from damp_engine.scaling import sample_grid
from damp_engine.validity import validity_mask

DEFAULT_SCENES = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsi" / "test"


def scene_prompt(cube) -> torch.Tensor:
    """(1, 6) raw prompt of a cube, the median over its 64-pixel sample windows."""
    from damp_engine.prompt import compute_prompt

    c, h, w = cube.shape
    lost = (cube == 0).reshape(c, -1).all(axis=1)
    rows = []
    for x0, y0, ww, hh in sample_grid(w, h, window=min(SAMPLE_WINDOW, w, h), count=8):
        window = cube[:, y0:y0 + hh, x0:x0 + ww]
        ok, void = validity_mask(window, window == window, lost)
        rows.append(compute_prompt(prompt_input(window, ok, void)).values[0])
    return torch.stack(rows).median(dim=0).values[None]


def prompt_and_share(net, cube) -> tuple[torch.Tensor, float]:
    """The scene's normalised prompt features and the complement share g(e) the model gives it."""
    raw = scene_prompt(cube)
    with torch.no_grad():
        share = net.complement_gate(net.embed(raw))
    return ((prompt_features(raw) - net.dp_shift) / net.dp_scale)[0], float(share)


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
        reference, _ = prompt_and_share(net, clean)
        for task in TASKS:
            degraded, _ = degrade(clean, task.kind, case_seed(0, path.stem, task), **task.params)
            prompt, skip = prompt_and_share(net, degraded)
            rows[task.name].append((float(torch.dist(prompt, reference)), skip))
    print(f"{'task':<22}{'distance from clean':>22}{'complement share':>18}   (means over scenes)")
    for task in TASKS:
        distance, skip = (sum(v) / len(v) for v in zip(*rows[task.name]))
        print(f"{task.name:<22}{distance:>22.2f}{skip:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
