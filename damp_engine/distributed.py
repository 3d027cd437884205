"""Data-parallel training in several local processes (DESIGN §9): launch, process group, rank rules.

``damp train … --nproc N`` starts N processes through torch.distributed's launcher (torchrun's
``--standalone`` rendezvous: localhost, a free port); ``torchrun --nproc-per-node N -m
damp_engine.train …`` does the same by hand. Each process joins one process group (gloo on the
CPU, NCCL on GPUs with one GPU per local rank) and trains the network wrapped in
DistributedDataParallel, which averages the gradients of all processes after every backward pass.

Each step's global batch is one list of sample draws from the step's seeded generator, the same
list in every process; rank r of N prepares samples r, r + N, … of it (`Ranks.share`), so
together the ranks train on exactly the batch one process would. (The routers' load-balancing
loss and training noise stay each process's own, over its share.) Only rank 0 writes files and
prints (`Ranks.main_only`).
"""
from __future__ import annotations

import os
import signal
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.distributed as dist

from .errors import DampInputError
from .environment import kept_environment


def _nothing(*args, **kwargs) -> None:
    """What `Ranks.main_only` gives the ranks other than 0."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (rank 0 of 1 when it trains alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, model cards and the log."""
        return self.rank == 0

    def share(self, batch: int) -> slice:
        """The samples of a global batch of `batch` that this rank prepares: r, r + N, …"""
        return slice(self.rank, batch, self.world)

    def loss_weight(self, batch: int) -> float:
        """The factor of this rank's mean loss over its share: N × its share of the batch, so that
        DDP's average of the ranks' gradients is the gradient of the mean over the whole batch."""
        return len(range(batch)[self.share(batch)]) * self.world / batch

    def device(self, device: torch.device) -> torch.device:
        """Where this rank trains: its own GPU (``cuda:LOCAL_RANK``) when several train on CUDA."""
        return torch.device("cuda", self.local_rank) if device.type == "cuda" and self.world > 1 else device

    def main_only(self, action: Callable[..., None]) -> Callable[..., None]:
        """`action` on rank 0; on the other ranks a function that does nothing."""
        return action if self.is_main else _nothing


def _grouped() -> bool:
    """Whether this process is in a process group (never where torch lacks torch.distributed)."""
    return dist.is_available() and dist.is_initialized()


def launched() -> bool:
    """True in a process started by torchrun (or `launch`), which sets WORLD_SIZE and RANK."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def current() -> Ranks:
    """This process's ranks in the process group `process_group` set up; rank 0 of 1 without one."""
    if not _grouped():
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """Within the block, this launched process is a member of its group (gloo on the CPU, NCCL
    on CUDA; torchrun's environment says where to meet) and `current` gives its ranks; the group
    is left at the end. A process that was not launched, or launched alone, trains by itself."""
    world = int(os.environ["WORLD_SIZE"]) if launched() else 1
    if world == 1:
        yield
        return
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise DampInputError(f"Training on CUDA in {world} processes needs a GPU for each; this machine has "
                                 f"{torch.cuda.device_count()}. Use fewer processes or --device cpu.")
        torch.cuda.set_device(ranks.device(device))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
        dist.barrier()  # no rank leaves while another (rank 0 writing the last checkpoint) still works
    finally:
        dist.destroy_process_group()


def data_parallel(net: torch.nn.Module, ranks: Ranks) -> torch.nn.Module:
    """`net` in DistributedDataParallel when there are several ranks, else `net` itself.

    Parameters may go unused in a rank's step (DAMoE runs only the experts its samples chose),
    so DDP looks for them after each forward pass. The gradients of the depth-wise convolutions'
    weights differ from the weights in the stride of a dimension of size 1 (the same memory
    layout); DDP's performance warning about it, printed by every process, is silenced.
    """
    if ranks.world == 1:
        return net
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    device = next(net.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)


def sum_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The sum of `value` over all ranks, as a detached copy (what rank 0 logs)."""
    total = value.detach().clone()
    if _grouped():
        dist.all_reduce(total)
    return total


_LAUNCHER_SIGNALS = [getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT") if hasattr(signal, n)]


def launch(nproc: int, train_args: list[str]) -> int:
    """Run ``python -m damp_engine.train TRAIN_ARGS`` in `nproc` processes on this machine.

    torch.distributed's launcher with a standalone rendezvous (localhost, a free port); returns
    0, the exit code of the first process that failed (128 + N for one killed by signal N), or
    128 + N when the launcher itself got signal N (Ctrl-C, SIGTERM: it stops the processes first).
    Each process reports its own errors, in one line as `damp` does. The launcher's handlers of
    SIGTERM, SIGINT, SIGHUP and SIGQUIT are undone at the end, and so are the environment variables
    it sets in this process (OMP_NUM_THREADS=1 among them: a later process started from here, such
    as a loader worker, would otherwise compute with another thread count than this one).
    """
    from torch.distributed import run
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    options = run.parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "damp_engine.train"])
    options.training_script_args = list(train_args)  # not parsed: torchrun would take --nproc for its own
    kept = {sig: signal.getsignal(sig) for sig in _LAUNCHER_SIGNALS}
    try:
        with kept_environment():
            run.run(options)
    except ChildFailedError as exc:
        code = exc.get_first_failure()[1].exitcode
        return code if code > 0 else 128 - code
    except SignalException as exc:
        return 128 + int(exc.sigval)
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in kept.items():
                if handler is not None:
                    signal.signal(sig, handler)
    return 0
