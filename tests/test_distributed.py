"""Data-parallel training (`damp train --nproc N`): at equal global batch two gloo processes follow
one process's loss, only rank 0 writes, and a run resumes with another number of processes.

The agreement stated in the README: over the first steps, the fit term of the loss (Charbonnier,
the logged loss minus 0.01 × aux) of a two-process run is within `FIT_TOLERANCE` (relative) of
one process's. The load-balancing term (aux) is a statistic of each process's own share of the
batch and the routers' training noise is drawn per process, so aux is not compared. In the first
steps of warm-up the weights barely move, so the loss alone would not see wrong gradients: the
gradient of one step is compared as well, with deterministic routing (`GRADIENT_TOLERANCE`).
A batch of 3 gives the two processes unequal shares (2 and 1 samples).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, smooth_cube, write_raster
from safetensors.torch import load_file, save_file

from damp_engine import distributed
from damp_engine.cli import main
from damp_engine.distributed import Ranks
from damp_engine.errors import DampInputError
from damp_engine.model import DAMP, get_preset
from damp_engine.train import AUX_WEIGHT, TrainConfig, batch_loss, make_batch, train
from damp_engine.training_data import list_rasters, load_scene

FIT_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-4  # relative to the largest gradient entry of each parameter
RUN_ARGS = ["--preset", "tiny", "--batch", "3", "--crop", "32", "--seed", "3", "--threads", "1",
            "--loader-workers", "0", "--checkpoint-minutes", "1e9"]
RUN_FILES = ["m.json", "m.log.csv", "m.optim.json", "m.optim.safetensors", "m.safetensors"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_raster(folder / "a.tif", smooth_cube(31, 40, 40, seed=1))
    write_raster(folder / "b.tif", smooth_cube(20, 40, 40, seed=2))
    return folder


def train_command(data: Path, out: Path, steps: int, *extra: str) -> int:
    return main(["train", str(data), "--out", str(out), "--steps", str(steps), *RUN_ARGS, *extra])


def fit_losses(out: Path) -> list[float]:
    """The logged loss minus the weighted aux loss, step by step."""
    with open(out.with_name(out.stem + ".log.csv"), newline="") as fh:
        return [float(row["loss"]) - AUX_WEIGHT * float(row["aux"]) for row in csv.DictReader(fh)]


def card(out: Path) -> dict:
    return json.loads(out.with_suffix(".json").read_text())["training"]


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict:
    """One process for 4 steps; two processes for 3 steps (what they leave is recorded), then that
    run resumed by one process up to step 4. The learning rate of these steps is the warm-up's,
    the same whatever the number of steps."""
    root = tmp_path_factory.mktemp("runs")
    one, two = root / "one" / "m.safetensors", root / "two" / "m.safetensors"
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(ROOT))  # the processes import this checkout's engine
        assert train_command(data, one, 4) == 0
        environment = dict(os.environ)
        assert train_command(data, two, 3, "--nproc", "2") == 0
        handlers_kept = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
        environment_kept = dict(os.environ) == environment
        two_files, two_fits, two_card = sorted(p.name for p in two.parent.iterdir()), fit_losses(two), card(two)
        assert train_command(data, two, 4, "--resume") == 0
    return {"one": fit_losses(one), "two": two_fits, "two_files": two_files, "two_card": two_card,
            "resumed": fit_losses(two), "resumed_card": card(two), "handlers_kept": handlers_kept,
            "environment_kept": environment_kept}


def test_two_processes_follow_the_one_process_loss_at_equal_global_batch(runs):
    assert runs["two"] == pytest.approx(runs["one"][:3], rel=FIT_TOLERANCE)


def test_a_two_process_run_leaves_what_a_one_process_run_leaves(runs):
    assert runs["two_files"] == RUN_FILES
    assert len(runs["two"]) == 3  # one log row a step: a single writer
    assert runs["two_card"]["steps_done"] == 3 and runs["two_card"]["processes"] == 2


def test_the_launcher_gives_back_the_signal_handlers_and_environment_it_changed(runs):
    assert runs["handlers_kept"]
    assert runs["environment_kept"]  # e.g. OMP_NUM_THREADS: loader workers started later compute alike


def test_a_two_process_run_resumes_in_one_process(runs):
    assert runs["resumed"][:3] == runs["two"]  # the log keeps the checkpoint's rows
    assert runs["resumed"][3] == pytest.approx(runs["one"][3], rel=FIT_TOLERANCE)
    assert runs["resumed_card"]["steps_done"] == 4 and runs["resumed_card"]["processes"] == 1


def fit_gradients(data: str, ranks: Ranks) -> dict[str, torch.Tensor]:
    """This rank's gradient of its weighted fit loss over its share of a batch of 3, through DDP
    when there are several ranks. Routing without training noise (eval mode) is the same in any
    number of processes; the output convolution is made non-zero so that every layer has a gradient."""
    torch.manual_seed(0)
    net = DAMP(get_preset("tiny"))
    torch.nn.init.normal_(net.output.weight, std=0.01)
    net.eval()
    scenes = [load_scene(f, 3, 32) for f in list_rasters([data])]
    samples = make_batch(scenes, 32, 3, np.random.default_rng([3, 0]), ranks.share(3))
    model = distributed.data_parallel(net, ranks)  # kept: DDP's reducer must live through backward
    fit, _ = batch_loss(model, samples)
    (ranks.loss_weight(3) * fit).backward()
    return {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in net.named_parameters()}


def _rank_gradients(rank: int, port: int, data: str, out: str) -> None:
    """One of two gloo processes (torch.multiprocessing.spawn): rank 0 saves its gradients."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with distributed.process_group(torch.device("cpu")):
        grads = fit_gradients(data, distributed.current())
        if rank == 0:
            save_file({n: g.contiguous() for n, g in grads.items()}, out)


def test_ddp_averages_the_ranks_weighted_gradients_into_the_one_process_gradient(tmp_path, data):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_rank_gradients, args=(port, str(data), str(tmp_path / "g.safetensors")), nprocs=2)
    two, one = load_file(str(tmp_path / "g.safetensors")), fit_gradients(str(data), Ranks())
    assert sum(int(g.count_nonzero()) for g in one.values()) > 0.9 * sum(g.numel() for g in one.values())
    for name, g in one.items():
        assert torch.allclose(two[name], g, rtol=0, atol=GRADIENT_TOLERANCE * float(g.abs().max()) + 1e-12), name


def test_a_rank_other_than_0_writes_and_prints_nothing(tmp_path, data, monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: Ranks(rank=1, world=2))
    monkeypatch.setattr(distributed, "data_parallel", lambda net, ranks: net)  # no process group here
    lines: list[str] = []
    cfg = TrainConfig(data=[str(data)], out=str(tmp_path / "run" / "m.safetensors"), steps=2, batch=4, crop=32,
                      prompt_samples=16, checkpoint_minutes=1e9)
    train(cfg, log=lines.append)
    assert list(tmp_path.iterdir()) == [] and lines == []


def test_the_ranks_shares_make_up_the_batch_once_and_their_weights_average_to_1():
    for world in (1, 2, 3):
        shares = [list(range(5))[Ranks(rank, world).share(5)] for rank in range(world)]
        assert sorted(sum(shares, [])) == [0, 1, 2, 3, 4]
        assert sum(Ranks(rank, world).loss_weight(5) for rank in range(world)) / world == pytest.approx(1.0)


def test_each_rank_prepares_its_share_of_the_one_process_batch(data):
    scenes = [load_scene(f, 3, 32) for f in list_rasters([str(data)])]
    batch = make_batch(scenes, 32, 3, np.random.default_rng([3, 0]))
    for rank in (0, 1):
        share = make_batch(scenes, 32, 3, np.random.default_rng([3, 0]), Ranks(rank, 2).share(3))
        assert len(share) == len(batch[rank::2])
        assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.clean, b.clean)
                   for a, b in zip(share, batch[rank::2]))


def test_a_batch_smaller_than_the_number_of_processes_is_refused(tmp_path, data, monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: Ranks(rank=0, world=4))
    cfg = TrainConfig(data=[str(data)], out=str(tmp_path / "m.safetensors"), steps=1, batch=2, crop=32)
    with pytest.raises(DampInputError, match="one crop per process"):
        train(cfg, log=lambda _: None)


def test_no_processes_is_a_clear_error(capsys, tmp_path, data):
    assert train_command(data, tmp_path / "m.safetensors", 1, "--nproc", "0") == 2
    assert capsys.readouterr().err.startswith("damp: error: --nproc is a number of processes")
