"""Training of DAMP on a folder of rasters, resumable from checkpoints (fine-tuning: `finetune`).

Each sample is a random crop of a random raster with all its bands (bands without data dropped),
flipped and rotated, then degraded by one draw from the training mix of
`degrade.sample_training_degradation` (never the zero-shot kinds; see `SKIPPED_KINDS`). As at inference (DESIGN §4a),
the degraded crop gets its validity mask, its spectral basis and its closed-form eigen-image
estimate (`damp_engine.restoration.network_input`); the network adds to that estimate. The loss
is Charbonnier on the restored cube in the crop's own bands (whatever their number) + 0.01 × the
routers' load-balancing loss; AdamW with warm-up and cosine decay.
Checkpoints are safetensors (weights, and optimiser moments for `--resume`: `run_state`) plus
JSON cards. Several processes train data-parallel (`damp train --nproc N`, or torchrun; see
`damp_engine.distributed`): each prepares its share of every step's batch, rank 0 writes.
Runnable as ``python -m damp_engine.train`` with the arguments of ``damp train``.
"""
from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import distributed
from .checkpoint import load_model, resolve_device, save_checkpoint
from .coarse import detect_blocks, interpolate_blocks
from .degrade import degrade, sample_training_degradation
from .environment import kept_environment
from .errors import DampCancelled, DampInputError
from .model import DAMP, get_preset
from .restoration import network_input
from .run_state import TrainLog, load_state, log_path, save_state, state_path
from .scene_analysis import NOISE_FREE_SIGMA, scene_estimates
from .subspace import SpectralBasis, reconstruct
from .training_data import Scene, list_rasters, load_scene, prompt_statistics, sample_crop
from .validity import validity_mask

AUX_WEIGHT = 0.01


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the model card)."""

    data: list[str]
    out: str
    preset: str = "tiny"
    steps: int = 20000
    batch: int = 8
    crop: int = 64
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 200
    seed: int = 0
    checkpoint_minutes: float = 5.0
    device: str = "auto"
    threads: int | None = None
    prompt_samples: int = 256
    base_model: str | None = None
    loader_workers: int = 0
    log_every: int = 0
    noise_weight: float = 1.0  # each noise kind this many times as likely as each other kind


@dataclass
class Sample:
    """One training sample: the network input and what turns its output back into the cube."""

    inputs: torch.Tensor       # (2K + 1, H, W)
    prompt: torch.Tensor       # (6,) raw prompt of the degraded crop
    basis: SpectralBasis
    z: torch.Tensor            # (K, H, W) eigen-images of the degraded crop
    degraded: torch.Tensor     # (C, H, W)
    valid: torch.Tensor        # (C, H, W) bool
    clean: torch.Tensor        # (C, H, W)


def make_sample(clean: np.ndarray, kind: str, params: dict, seed: int) -> Sample:
    """Degrade a clean crop and prepare it as `restore_raster` prepares a tile."""
    from .prompt import compute_prompt

    degraded, _ = degrade(clean, kind, seed=seed, **params)
    lost = (degraded == 0).reshape(degraded.shape[0], -1).all(axis=1)
    valid, _ = validity_mask(degraded, np.ones(degraded.shape, bool), lost)
    basis, blur = scene_estimates(degraded[None], valid[None])
    x, v = torch.from_numpy(degraded)[None], torch.from_numpy(valid)[None]
    blocks = detect_blocks([(degraded, valid, 0, 0)])
    if blocks is not None:
        x, blur = interpolate_blocks(x, blocks, (0, 0)), 0.0
    inputs, z, _ = network_input(basis, x, v, blur)
    return Sample(inputs[0], compute_prompt(degraded).values[0], basis, z[0], x[0], v[0], torch.from_numpy(clean))


# None of the paper's training kinds is left out: a blurred crop reaches the network through its
# blind deconvolution (`damp_engine.deblur`), as a blurred scene does at inference.
SKIPPED_KINDS: tuple[str, ...] = ()


def draw_degradation(rng: np.random.Generator, noise_weight: float = 1.0) -> tuple[str, dict]:
    """A draw from the paper's training mix (the noise kinds weighted by `noise_weight`), leaving
    out `SKIPPED_KINDS`."""
    while True:
        kind, params = sample_training_degradation(rng, noise_weight)
        if kind not in SKIPPED_KINDS:
            return kind, params


def make_batch(scenes: list[Scene], crop: int, batch: int, rng: np.random.Generator,
               share: slice = slice(None), noise_weight: float = 1.0) -> list[Sample]:
    """The samples `share` of a batch of `batch` drawn from `rng` (random scenes, crops,
    degradations, seeds): all draws are made, in one order, whatever the share, so that the
    ranks' shares (`distributed.Ranks.share`) make up exactly the batch one process makes."""
    draws = []
    for _ in range(batch):
        patch = sample_crop(scenes[rng.integers(len(scenes))], crop, rng)
        kind, params = draw_degradation(rng, noise_weight)
        draws.append((patch, kind, params, int(rng.integers(2**31))))
    return [make_sample(*draw) for draw in draws[share]]


def batch_loss(net: torch.nn.Module, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(Charbonnier of the restored cubes against the clean crops, mean over samples; aux loss).

    `net` is a `DAMP` or one in DistributedDataParallel."""
    device = next(net.parameters()).device
    inputs = torch.stack([s.inputs for s in samples]).float().to(device)
    out = net(inputs, torch.stack([s.prompt for s in samples]).to(device))
    losses = []
    for i, s in enumerate(samples):
        in_use = np.where(np.arange(s.basis.signal_std.size) < s.basis.rank, s.basis.signal_std, 0.0)
        components = out.components[i] * torch.as_tensor(in_use, dtype=torch.float32, device=device)[:, None, None]
        restored = reconstruct(s.basis, components[None])[0]
        degraded, valid = s.degraded.to(device), s.valid.to(device)
        fitted = reconstruct(s.basis, s.z[None].float().to(device))[0]
        complement = torch.where(valid, degraded - fitted, torch.zeros_like(degraded))
        share = 1.0 if float(np.nanmedian(s.basis.noise_sigma)) < NOISE_FREE_SIGMA else 0.0
        cube = restored + share * complement
        losses.append(charbonnier(cube, s.clean.to(device)))
    return torch.stack(losses).mean(), out.aux


_WORKER_SCENES: list[Scene] = []


def _load_worker(files: list[str], crop: int) -> None:
    """Initialise a batch-making process: one torch thread, the training scenes in memory."""
    torch.set_num_threads(1)
    _WORKER_SCENES[:] = [s for s in (load_scene(Path(f), 3, crop) for f in files) if s is not None]


def _worker_batch(seed: int, step: int, crop: int, batch: int, share: slice, noise_weight: float) -> list[Sample]:
    return make_batch(_WORKER_SCENES, crop, batch, np.random.default_rng([seed, step]), share, noise_weight)


class BatchStream:
    """The batches (this rank's `share` of each) of steps first, first + 1, ...: made in the training
    process, or ahead of it in ``workers`` background processes (at most ``2 × workers`` batches
    queued), identical either way. Step s's batch is drawn from the generator seeded [seed, s]."""

    def __init__(self, cfg: TrainConfig, files: list[Path], scenes: list[Scene], first: int,
                 share: slice = slice(None)):
        self.cfg, self.scenes, self.next_step, self.share = cfg, scenes, first, share
        self.pending: deque = deque()
        self.pool = None
        if cfg.loader_workers > 0:
            ctx = multiprocessing.get_context("spawn")
            with kept_environment():  # one BLAS thread each unless set: on a busy machine more only spin
                os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # (a quarter of their CPU time)
                self.pool = ctx.Pool(cfg.loader_workers, initializer=_load_worker,
                                     initargs=([str(f) for f in files], cfg.crop))

    def _submit(self) -> None:
        while len(self.pending) < 2 * self.cfg.loader_workers and self.next_step < self.cfg.steps:
            self.pending.append(self.pool.apply_async(
                _worker_batch, (self.cfg.seed, self.next_step, self.cfg.crop, self.cfg.batch, self.share,
                                self.cfg.noise_weight)))
            self.next_step += 1

    def batch(self, step: int) -> list[Sample]:
        if self.pool is None:
            return make_batch(self.scenes, self.cfg.crop, self.cfg.batch,
                              np.random.default_rng([self.cfg.seed, step]), self.share, self.cfg.noise_weight)
        self._submit()
        return self.pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


class _NoBar:
    """What `step_bar` gives where no bar is drawn."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


def step_bar(total: int, done: int):
    """tqdm's bar of the steps (loss, speed, time left) on stderr when it is a terminal; a silent
    stand-in elsewhere (QGIS's Fine-tune, logs) and where tqdm is not installed (QGIS's Python)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    if sys.stderr is None or not sys.stderr.isatty():
        return _NoBar()
    return tqdm(total=total, initial=done, unit="step", file=sys.stderr, dynamic_ncols=True)


def train(cfg: TrainConfig, resume: bool = False, progress: Callable[[float], None] | None = None,
          cancelled: Callable[[], bool] | None = None, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) training; writes <out>.safetensors/.json and returns the weights path.

    In a process group (`distributed.process_group`) every process runs this: each prepares its
    share of every step's batch, DDP averages the gradients (each process's fit loss is weighted
    so that the average is the mean over the whole batch), and only rank 0 writes and logs.
    """
    ranks = distributed.current()
    log = ranks.main_only(log)
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = ranks.device(resolve_device(cfg.device))
    if cfg.batch < ranks.world:
        raise DampInputError(f"A batch of {cfg.batch} cannot be shared by {ranks.world} processes; "
                             "give --batch at least one crop per process.")
    out = Path(cfg.out)
    if ranks.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)

    if cfg.base_model or (resume and out.exists()):
        loaded = load_model(out if resume and out.exists() else cfg.base_model, device=str(device))
        net, card = loaded.net, loaded.card
        if cfg.base_model and not (resume and out.exists()):
            # the base model's evaluation describes the base model, not this one
            card = {**{k: v for k, v in card.items() if k != "evaluation"},
                    "fine_tuned_from": str(cfg.base_model)}
    else:
        net, card = DAMP(get_preset(cfg.preset)).to(device), {}
    files = list_rasters(cfg.data)
    scenes = [s for s in (load_scene(f, 3, cfg.crop) for f in files) if s is not None]
    if not scenes:
        raise DampInputError(f"No training raster is at least {cfg.crop}×{cfg.crop} pixels with 3 bands.")
    log(f"training {net.preset.name} ({sum(p.numel() for p in net.parameters()):,} parameters) on "
        f"{len(scenes)} rasters, device {device}" + (f", {ranks.world} processes" if ranks.world > 1 else ""))

    if not card:
        stats = prompt_statistics(scenes, cfg.crop, count=cfg.prompt_samples)
        net.set_prompt_normalisation(torch.tensor(stats["shift"]), torch.tensor(stats["scale"]))
        card = {"prompt_ranges": stats["ranges"]}
    net.train()
    if ranks.rank:  # every rank starts from rank 0's weights (DDP); the routers' noise is its own
        torch.manual_seed(cfg.seed * 1000 + ranks.rank)
    model = distributed.data_parallel(net, ranks)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state_file = state_path(out)
    step = load_state(state_file, optimizer, net) if resume and state_file.exists() else 0
    use_amp = device.type == "cuda"
    share = ranks.share(cfg.batch)
    weight = ranks.loss_weight(cfg.batch)

    @ranks.main_only
    def checkpoint(now_step: int) -> None:
        net.eval()
        meta = {**card, "training": {**asdict(cfg), "steps_done": now_step, "processes": ranks.world,
                                      "data": [{"file": s.name, "sha256": s.sha256} for s in scenes]}}
        save_checkpoint(net, out, meta)
        save_state(state_file, optimizer, net, now_step)
        net.train()

    bar = step_bar(cfg.steps, step) if ranks.is_main else _NoBar()
    stream = BatchStream(cfg, files, scenes, step, share)
    with TrainLog(log_path(out) if ranks.is_main else None, step) as run_log, contextlib.closing(stream), bar:
        t0 = last_ckpt = time.time()
        recent: list[float] = []
        while step < cfg.steps:
            if cancelled and cancelled():
                raise DampCancelled()
            samples = stream.batch(step)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, cfg)
            t_step = time.time()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                fit, aux = batch_loss(model, samples)
                loss = weight * fit + AUX_WEIGHT * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            step += 1
            speed = cfg.batch / max(time.time() - t_step, 1e-9)
            # as one process would log them: the fit over the whole batch, the ranks' mean aux loss
            shares = torch.stack([fit.float() * (len(samples) / cfg.batch), aux.float() / ranks.world])
            fit_all, aux_all = distributed.sum_over_ranks(shares).tolist()
            run_log.row(step, fit_all + AUX_WEIGHT * aux_all, aux_all, learning_rate(step - 1, cfg), speed,
                        time.time() - t0)
            bar.set_postfix(loss=f"{fit_all + AUX_WEIGHT * aux_all:.4f}", samples_per_s=f"{speed:.1f}", refresh=False)
            bar.update(1)
            recent.append(fit_all)
            if cfg.log_every and step % cfg.log_every == 0:
                log(f"step {step} of {cfg.steps}: loss {np.mean(recent[-cfg.log_every:]):.4f}")
            if step % 25 == 0:
                run_log.flush()
            if progress:
                progress(step / cfg.steps)
            if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                run_log.flush()
                checkpoint(step)
                last_ckpt = time.time()
        checkpoint(step)
    log(f"\nwrote {out} after {step} steps")
    return out


if __name__ == "__main__":  # python -m damp_engine.train ARGS (what torchrun starts) = damp train ARGS
    from .cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
