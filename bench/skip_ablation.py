"""Why DAMP's global skip is gated by the prompt: identity skip vs `SkipGate`, trained side by side.

Two tiny networks with the same initial weights are trained for ``--steps`` steps on the same
batches (8 crops of 64², Gaussian noise σ ∈ [30, 70], `../shared/data/hsi/train`); one keeps
the gated skip y = net(x) + g(e) ⊙ x, the other has DESIGN's identity skip y = net(x) + x.
Every ``--every`` steps both restore the centre 128² of CAVE balloons at σ = 30 (fixed seed)
and the PSNR is printed. Run: `.venv/bin/python -m bench.skip_ablation`.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from damp_engine.degrade import degrade
from damp_engine.model import DAMP, get_preset
from damp_engine.quality import psnr
from damp_engine.train import AUX_WEIGHT, charbonnier, list_rasters, load_scene, prompt_statistics, sample_crop

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "hsi"


class IdentitySkip(nn.Module):
    """Stands in for `SkipGate`: lets the whole input through, (B, emb) -> (B, 1, 1, 1) of ones."""

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return e.new_ones(e.shape[0], 1, 1, 1)


def noise_batch(scenes, rng: np.random.Generator, batch: int = 8, crop: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) crops with Gaussian noise σ ∈ [30, 70]/255."""
    clean = [sample_crop(scenes[rng.integers(len(scenes))], 31, crop, rng) for _ in range(batch)]
    noisy = [degrade(c, "gaussian_noise", seed=int(rng.integers(2**31)), sigma=float(rng.uniform(30, 70)))[0]
             for c in clean]
    return torch.from_numpy(np.stack(noisy)), torch.from_numpy(np.stack(clean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    scenes = [s for s in (load_scene(f, 3, 64) for f in list_rasters([str(DATA / "train")])) if s is not None]
    reference = load_scene(DATA / "test" / "cave_balloons.tif", 3, 64).cube[:, 192:320, 192:320].copy()
    noisy_ref = torch.from_numpy(degrade(reference, "gaussian_noise", seed=1, sigma=30.0)[0])[None]

    torch.manual_seed(0)
    gated = DAMP(get_preset("tiny"))
    stats = prompt_statistics(scenes, 31, 64, count=64)
    gated.set_prompt_normalisation(torch.tensor(stats["shift"]), torch.tensor(stats["scale"]))
    identity = copy.deepcopy(gated)
    identity.skip_gate = IdentitySkip()
    nets = {"identity skip": identity, "gated skip": gated}
    optimisers = {name: torch.optim.AdamW(net.parameters(), lr=args.lr) for name, net in nets.items()}

    print(f"input PSNR {psnr(reference, np.clip(noisy_ref[0].numpy(), 0, 1)):.2f} dB (σ = 30, CAVE balloons 128²)")
    for step in range(1, args.steps + 1):
        noisy, clean = noise_batch(scenes, np.random.default_rng([3, step]))
        for name, net in nets.items():
            net.train()
            pred, aux = net(noisy, return_aux=True)
            loss = charbonnier(pred, clean) + AUX_WEIGHT * aux
            optimisers[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimisers[name].step()
        if step % args.every == 0:
            cells = []
            for name, net in nets.items():
                with torch.no_grad():
                    out = net.eval()(noisy_ref)[0].numpy()
                cells.append(f"{name} {psnr(reference, np.clip(out, 0, 1)):.2f} dB")
            print(f"step {step}: " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
