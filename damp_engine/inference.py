"""Run batches of tiles through a DAMP network on the CPU or a CUDA GPU.

On CUDA the batch is staged in pinned (page-locked) host memory so the copy to the GPU can run
asynchronously, and the network runs under autocast (bfloat16 where the GPU supports it, else
float16); outputs come back as float32. The degradation prompt is computed in float32, outside
autocast. On the CPU everything stays float32.

A GPU that runs out of memory is not fatal: `Backoff` decides how to retry (half the batch,
then half the tile) and the tiling loop re-queues the work.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch

from .checkpoint import LoadedModel
from .errors import DampInputError
from .restoration import restore_cube
from .subspace import SpectralBasis

OutOfMemoryError = torch.cuda.OutOfMemoryError


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The reduced precision used on `device`: bf16 if the GPU supports it, else fp16; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class NetworkRunner:
    """Restores batches of scaled tiles with a loaded network on its device, under autocast on a GPU."""

    def __init__(self, model: LoadedModel):
        self.device = model.device
        self.net = model.net
        self.dtype = autocast_dtype(model.device)

    def upload(self, x: np.ndarray, dtype=np.float32) -> torch.Tensor:
        """A batch on the device; staged in pinned memory for an asynchronous copy to a GPU."""
        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def release_memory(self) -> None:
        """Return cached GPU memory after an out-of-memory error (no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def restore(self, basis: SpectralBasis, x: np.ndarray, valid: np.ndarray,
                prompts: np.ndarray, complement_share: float = 0.0, keep_valid: bool = False,
                blur: float = 0.0, discard: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(restored (B, C, H, W) float32, gates (B, n_blocks, E) float32) of scaled tiles x with their
        validity (B, C, H, W) and the raw prompts (B, 6) that route them (complement_share and
        keep_valid, blur and discard as for `restore_cube`)."""
        cube, ok = self.upload(x), self.upload(valid, dtype=bool)
        with torch.inference_mode(), self._autocast():
            result = restore_cube(self.net, basis, cube, ok, self.upload(prompts), complement_share, keep_valid,
                                  blur, discard)
        return result.cube.float().cpu().numpy(), result.trace.gates.float().cpu().numpy()


class Backoff:
    """The batch and tile sizes of a run, lowered step by step when the GPU runs out of memory.

    After an out-of-memory error on a batch of several tiles the batch is halved; on a single
    tile the tile is halved, down to `min_tile`. Below that the run cannot go on on this device.
    """

    def __init__(self, batch: int, tile: int, min_tile: int, log: Callable[[str], None] | None = None):
        self.batch, self.tile, self.min_tile = batch, tile, min_tile
        self.events: list[str] = []
        self._log = log

    def shrink(self, attempted: int) -> str:
        """Lower the batch (returns "batch") or the tile (returns "tile") after an OOM on `attempted` tiles."""
        if attempted > 1:
            self.batch = max(1, attempted // 2)
            return self._note("batch", f"GPU out of memory: batch lowered to {self.batch} tile(s).")
        if self.tile // 2 >= self.min_tile:
            self.tile //= 2
            self.batch = 1
            return self._note("tile", f"GPU out of memory: tile lowered to {self.tile} px.")
        raise DampInputError(
            f"The GPU ran out of memory even for one {self.tile}-pixel tile; close other GPU programs "
            "or run on the CPU (device 'cpu').")

    def _note(self, what: str, message: str) -> str:
        self.events.append(message)
        if self._log:
            self._log(message)
        return what
