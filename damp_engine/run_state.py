"""What a training run keeps beside its model so that `--resume` continues it.

``NAME.optim.safetensors`` holds the optimiser's moments (safetensors, never a pickle) and
``NAME.optim.json`` the step they belong to; ``NAME.log.csv`` is the loss log, one row a step.
On resume the log keeps its rows up to the checkpoint's step and the steps after it are redone.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .outputs import write_atomically

LOG_HEADER = ["step", "loss", "aux", "lr", "samples_per_s", "elapsed_s"]


def state_path(out: Path) -> Path:
    """The optimiser state of the model `out` (``NAME.optim.safetensors``)."""
    return out.with_name(out.stem + ".optim.safetensors")


def log_path(out: Path) -> Path:
    """The CSV log of the model `out` (``NAME.log.csv``)."""
    return out.with_name(out.stem + ".log.csv")


def save_state(path: Path, optimizer: torch.optim.Optimizer, net: torch.nn.Module, step: int) -> None:
    """Optimiser moments as safetensors + the step as JSON, for --resume (no pickles)."""
    names = {id(p): n for n, p in net.named_parameters()}
    tensors = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p)
            if st:
                n = names[id(p)]
                tensors[f"{n}.exp_avg"] = st["exp_avg"].contiguous()
                tensors[f"{n}.exp_avg_sq"] = st["exp_avg_sq"].contiguous()
                tensors[f"{n}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    write_atomically(path, lambda tmp: save_file(tensors, str(tmp)))
    write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps({"step": step})))


def load_state(path: Path, optimizer: torch.optim.Optimizer, net: torch.nn.Module) -> int:
    """Restore optimiser moments written by save_state; returns the step to continue from."""
    tensors = load_file(str(path))
    for n, p in net.named_parameters():
        if f"{n}.exp_avg" in tensors:
            optimizer.state[p] = {"exp_avg": tensors[f"{n}.exp_avg"].to(p.device),
                                  "exp_avg_sq": tensors[f"{n}.exp_avg_sq"].to(p.device),
                                  "step": tensors[f"{n}.step"].reshape(()).clone()}
    return int(json.loads(path.with_suffix(".json").read_text())["step"])


def read_log(path: Path, up_to: int) -> list[list[str]]:
    """Rows of an earlier CSV log up to step `up_to` (steps after the last checkpoint are redone)."""
    if up_to == 0 or not path.exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [row for row in rows if row and int(row[0]) <= up_to]


class TrainLog:
    """The CSV log of a run, opened as a context: the earlier log's rows up to `first_step`, then a
    row per step. With ``path=None`` (a training process other than rank 0) it writes nothing."""

    def __init__(self, path: Path | None, first_step: int):
        self.path, self.first_step, self.fh, self.writer = path, first_step, None, None

    def __enter__(self) -> "TrainLog":
        if self.path is not None:
            kept = read_log(self.path, up_to=self.first_step)
            self.fh = open(self.path, "w", newline="")
            self.writer = csv.writer(self.fh)
            self.writer.writerow(LOG_HEADER)
            self.writer.writerows(kept)
        return self

    def row(self, step: int, loss: float, aux: float, lr: float, samples_per_s: float, elapsed_s: float) -> None:
        if self.writer is not None:
            self.writer.writerow([step, f"{loss:.7f}", f"{aux:.5f}", f"{lr:.2e}", f"{samples_per_s:.2f}",
                                  f"{elapsed_s:.1f}"])

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            self.fh.close()
