"""Fine-tuning a model on the user's own rasters (QGIS's damp:finetune), with a before/after check.

A short `damp_engine.train.train` run from the base model's weights, written under a hidden
staging name and moved onto the requested file only when it has succeeded.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .checkpoint import default_model_path, load_model
from .degrade import degrade
from .errors import DampInputError
from .outputs import write_atomically
from .train import TrainConfig, train

FINETUNE_CHECK = ("gaussian_noise", {"sigma": 30.0}, 0)  # the held-out check: kind, parameters, seed


def finetune(rasters: list[str], out_model: str, base: str | None = None, steps: int = 300,
             batch: int = 4, crop: int = 64, lr: float = 1e-4, device: str = "auto",
             progress: Callable[[float], None] | None = None,
             cancelled: Callable[[], bool] | None = None, log: Callable[[str], None] = print) -> Path:
    """Fine-tune a model (the bundled one by default) on the user's own rasters.

    The rasters are treated as clean; degradations are simulated on them. The loss is logged
    every tenth of the run; before and after, the base and the new model restore the same
    held-out crop (the centre of the first raster, Gaussian noise σ = 30, seed 0) and both PSNRs
    are logged and written into the new model's card (``fine_tune_check``). The output is a new
    model file that `restore_raster` accepts; on cancel nothing is written.
    """
    out = Path(out_model)
    if out.suffix != ".safetensors":
        raise DampInputError(f"Name the fine-tuned model '*.safetensors', not '{out.name}'.")
    base_path = Path(base or default_model_path())
    staging = out.with_name(f".{out.stem}.finetune")
    staging.mkdir(parents=True, exist_ok=True)
    try:
        check = held_out_check(rasters[0], crop)
        before = check(load_model(base_path, device="cpu"))
        log(f"held-out crop of {Path(rasters[0]).name} with Gaussian noise σ = 30: "
            f"the base model gives {before:.2f} dB")
        cfg = TrainConfig(data=[str(r) for r in rasters], out=str(staging / out.name), steps=steps,
                          batch=batch, crop=crop, lr=lr, warmup=min(50, steps // 5), device=device,
                          base_model=str(base_path), checkpoint_minutes=1e9, log_every=max(1, steps // 10))
        trained = train(cfg, progress=progress, cancelled=cancelled,
                        log=lambda line: None if staging.name in line else log(line))  # no hidden paths
        after = check(load_model(trained, device="cpu"))
        log(f"held-out crop: {before:.2f} dB with the base model, {after:.2f} dB with the fine-tuned one")
        card = json.loads(trained.with_suffix(".json").read_text())
        card["training"]["out"] = str(out)
        card["name"] = out.stem
        card["fine_tune_check"] = {"raster": Path(rasters[0]).name, "crop": crop, "kind": FINETUNE_CHECK[0],
                                   "params": FINETUNE_CHECK[1], "seed": FINETUNE_CHECK[2],
                                   "psnr_base": round(before, 3), "psnr_fine_tuned": round(after, 3)}
        write_atomically(trained.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"))
        for suffix in (".json", ".safetensors"):
            trained.with_suffix(suffix).replace(out.with_suffix(suffix))
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
    return out


def held_out_check(raster: str | os.PathLike, crop: int) -> Callable[[object], float]:
    """A function scoring a loaded model on one fixed degraded crop of `raster` (PSNR, dB)."""
    from .evaluation import load_reference, restore
    from .quality import psnr

    clean = load_reference(Path(raster), max(crop, 32))
    kind, params, seed = FINETUNE_CHECK
    degraded, _ = degrade(clean, kind, seed=seed, **params)
    return lambda model: psnr(clean, np.clip(restore(model, degraded), 0.0, 1.0))
