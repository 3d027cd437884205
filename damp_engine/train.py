"""Training and fine-tuning of DAMP on a folder of rasters, resumable from checkpoints.

Each sample is a random crop of a random raster with all its bands (bands without data dropped),
flipped and rotated, then degraded by one draw from the training mix of
`degrade.sample_training_degradation` (never the zero-shot kinds; see `SKIPPED_KINDS`). As at inference (DESIGN §4a),
the degraded crop gets its validity mask, its spectral basis and its closed-form eigen-image
estimate (`damp_engine.restoration.network_input`); the network adds to that estimate. The loss
is Charbonnier on the restored cube in the crop's own bands (whatever their number) + 0.01 × the
routers' load-balancing loss; AdamW with warm-up and cosine decay.
Checkpoints are safetensors (weights, and optimiser moments for `--resume`) plus JSON cards.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
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
from safetensors.torch import load_file, save_file

from .checkpoint import load_model, resolve_device, save_checkpoint
from .coarse import detect_blocks, interpolate_blocks
from .degrade import degrade, sample_training_degradation
from .errors import DampCancelled, DampInputError
from .model import DAMP, get_preset, prompt_features
from .raster import RASTER_SUFFIXES, RasterReader
from .restoration import network_input
from .scaling import measure_scaling
from .scene import fill_invalid
from .scene_analysis import NOISE_FREE_SIGMA, scene_basis
from .subspace import SpectralBasis, reconstruct
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


@dataclass
class Scene:
    """One training raster held in memory, scaled to about [0, 1], bands without data removed."""

    name: str
    cube: np.ndarray
    sha256: str


def list_rasters(paths: list[str]) -> list[Path]:
    """Raster files named directly or found (recursively) in the given folders."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in RASTER_SUFFIXES)
        elif p.exists():
            files.append(p)
        else:
            raise DampInputError(f"Training data not found: {p}.")
    if not files:
        raise DampInputError(f"No rasters (.tif, .bsq, …) found in {', '.join(paths)}.")
    return files


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_scene(path: Path, min_bands: int, min_size: int) -> Scene | None:
    """Read a raster for training; None if it is too small or has too few bands with data."""
    with RasterReader(path) as reader:
        scaling = measure_scaling(reader)
        cube, valid = reader.read_all()
    cube, valid = cube[scaling.good_bands], valid[scaling.good_bands]
    if cube.shape[0] < 3 or min(cube.shape[1:]) < min_size:
        return None
    # a pixel invalid in any band gets, in every band, that band's median over the complete pixels
    cube = fill_invalid(cube / scaling.factor, np.broadcast_to(valid.all(axis=0), valid.shape))
    return Scene(path.name, np.ascontiguousarray(cube, np.float32), file_sha256(path))


def sample_crop(scene: Scene, crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random (C, crop, crop) training crop with all the scene's bands, randomly flipped and rotated."""
    _, h, w = scene.cube.shape
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    patch = scene.cube[:, y:y + crop, x:x + crop]
    patch = np.rot90(patch, k=int(rng.integers(4)), axes=(1, 2))
    if rng.random() < 0.5:
        patch = patch[:, :, ::-1]
    return np.ascontiguousarray(patch)


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
    basis = scene_basis(degraded[None], valid[None])
    x, v = torch.from_numpy(degraded)[None], torch.from_numpy(valid)[None]
    blocks = detect_blocks([(degraded, valid, 0, 0)])
    if blocks is not None:
        x = interpolate_blocks(x, blocks, (0, 0))
    inputs, z = network_input(basis, x, v)
    return Sample(inputs[0], compute_prompt(degraded).values[0], basis, z[0], x[0], v[0], torch.from_numpy(clean))


# Noise-free scenes without coarse pixels keep their valid samples at inference
# (`SceneAnalysis.keep_valid`), so a blurred or clean crop never reaches the network there:
# training spends its steps on the degradations the network does restore.
SKIPPED_KINDS = ("gaussian_blur",)


def draw_degradation(rng: np.random.Generator) -> tuple[str, dict]:
    """A draw from the paper's training mix, leaving out `SKIPPED_KINDS`."""
    while True:
        kind, params = sample_training_degradation(rng)
        if kind not in SKIPPED_KINDS:
            return kind, params


def make_batch(scenes: list[Scene], crop: int, batch: int, rng: np.random.Generator) -> list[Sample]:
    """`batch` training samples from random scenes, degradations and seeds."""
    samples = []
    for _ in range(batch):
        patch = sample_crop(scenes[rng.integers(len(scenes))], crop, rng)
        kind, params = draw_degradation(rng)
        samples.append(make_sample(patch, kind, params, int(rng.integers(2**31))))
    return samples


def prompt_statistics(scenes: list[Scene], crop: int, count: int = 256, seed: int = 12345) -> dict:
    """DP statistics over degraded and clean training crops.

    Returns the normalisation (mean and std of `prompt_features` of the raw metrics over both)
    and, per metric, the 5–95 % range of the raw metrics on clean and on degraded crops (shown
    to users as the "seen in training" bars).
    """
    from .prompt import METRIC_NAMES, compute_prompt

    rng = np.random.default_rng(seed)
    degraded_rows, clean_rows = [], []
    for _ in range(max(1, count)):
        patch = sample_crop(scenes[rng.integers(len(scenes))], crop, rng)
        kind, params = sample_training_degradation(rng)
        degraded, _ = degrade(patch, kind, seed=int(rng.integers(2**31)), **params)
        degraded_rows.append(compute_prompt(degraded).values.double())
        clean_rows.append(compute_prompt(patch).values.double())
    degraded_v, clean_v = torch.cat(degraded_rows), torch.cat(clean_rows)
    both = prompt_features(torch.cat([degraded_v, clean_v]))

    def ranges(v: torch.Tensor) -> dict[str, list[float]]:
        q = torch.quantile(v, torch.tensor([0.05, 0.95], dtype=v.dtype), dim=0)
        return {name: [float(q[0, i]), float(q[1, i])] for i, name in enumerate(METRIC_NAMES)}

    return {"shift": both.mean(0).tolist(), "scale": both.std(0).clamp_min(1e-6).tolist(),
            "ranges": {"clean": ranges(clean_v), "degraded": ranges(degraded_v)}}


def batch_loss(net: DAMP, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """(Charbonnier of the restored cubes against the clean crops, mean over samples; aux loss)."""
    device = net.dp_shift.device
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


def _worker_batch(seed: int, step: int, crop: int, batch: int) -> list[Sample]:
    return make_batch(_WORKER_SCENES, crop, batch, np.random.default_rng([seed, step]))


class BatchStream:
    """The batches of steps first, first + 1, ...: made in the training process, or ahead of it in
    ``workers`` background processes (at most ``2 × workers`` batches queued), identical either way."""

    def __init__(self, cfg: TrainConfig, files: list[Path], scenes: list[Scene], first: int):
        self.cfg, self.scenes, self.next_step = cfg, scenes, first
        self.pending: deque = deque()
        self.pool = None
        if cfg.loader_workers > 0:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(cfg.loader_workers, initializer=_load_worker,
                                 initargs=([str(f) for f in files], cfg.crop))

    def _submit(self) -> None:
        while len(self.pending) < 2 * self.cfg.loader_workers and self.next_step < self.cfg.steps:
            self.pending.append(self.pool.apply_async(
                _worker_batch, (self.cfg.seed, self.next_step, self.cfg.crop, self.cfg.batch)))
            self.next_step += 1

    def batch(self, step: int) -> list[Sample]:
        if self.pool is None:
            return make_batch(self.scenes, self.cfg.crop, self.cfg.batch, np.random.default_rng([self.cfg.seed, step]))
        self._submit()
        return self.pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


LOG_HEADER = ["step", "loss", "aux", "lr", "samples_per_s", "elapsed_s"]


def read_log(path: Path, up_to: int) -> list[list[str]]:
    """Rows of an earlier CSV log up to step `up_to` (steps after the last checkpoint are redone)."""
    if up_to == 0 or not path.exists():
        return []
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return [row for row in rows if row and int(row[0]) <= up_to]


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 2 % of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def save_state(path: Path, optimizer: torch.optim.Optimizer, net: DAMP, step: int) -> None:
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
    from .outputs import write_atomically

    write_atomically(path, lambda tmp: save_file(tensors, str(tmp)))
    write_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps({"step": step})))


def load_state(path: Path, optimizer: torch.optim.Optimizer, net: DAMP) -> int:
    """Restore optimiser moments written by save_state; returns the step to continue from."""
    tensors = load_file(str(path))
    for n, p in net.named_parameters():
        if f"{n}.exp_avg" in tensors:
            optimizer.state[p] = {"exp_avg": tensors[f"{n}.exp_avg"].to(p.device),
                                  "exp_avg_sq": tensors[f"{n}.exp_avg_sq"].to(p.device),
                                  "step": tensors[f"{n}.step"].reshape(()).clone()}
    return int(json.loads(path.with_suffix(".json").read_text())["step"])


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
    """Run (or resume) training; writes <out>.safetensors/.json and returns the weights path."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state_path = out.with_name(out.stem + ".optim.safetensors")
    log_path = out.with_name(out.stem + ".log.csv")

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
        f"{len(scenes)} rasters, device {device}")

    if not card:
        stats = prompt_statistics(scenes, cfg.crop, count=cfg.prompt_samples)
        net.set_prompt_normalisation(torch.tensor(stats["shift"]), torch.tensor(stats["scale"]))
        card = {"prompt_ranges": stats["ranges"]}
    net.train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = load_state(state_path, optimizer, net) if resume and state_path.exists() else 0
    use_amp = device.type == "cuda"

    def checkpoint(now_step: int) -> None:
        net.eval()
        meta = {**card, "training": {**asdict(cfg), "steps_done": now_step,
                                      "data": [{"file": s.name, "sha256": s.sha256} for s in scenes]}}
        save_checkpoint(net, out, meta)
        save_state(state_path, optimizer, net, now_step)
        net.train()

    bar = step_bar(cfg.steps, step)
    kept_rows = read_log(log_path, up_to=step)
    stream = BatchStream(cfg, files, scenes, step)
    with open(log_path, "w", newline="") as fh, contextlib.closing(stream), bar:
        writer = csv.writer(fh)
        writer.writerow(LOG_HEADER)
        writer.writerows(kept_rows)
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
                fit, aux = batch_loss(net, samples)
                loss = fit + AUX_WEIGHT * aux
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            step += 1
            speed = cfg.batch / max(time.time() - t_step, 1e-9)
            writer.writerow([step, f"{loss.item():.5f}", f"{aux.item():.5f}", f"{learning_rate(step - 1, cfg):.2e}",
                             f"{speed:.2f}", f"{time.time() - t0:.1f}"])
            bar.set_postfix(loss=f"{loss.item():.4f}", samples_per_s=f"{speed:.1f}", refresh=False)
            bar.update(1)
            recent.append(float(fit.item()))
            if cfg.log_every and step % cfg.log_every == 0:
                log(f"step {step} of {cfg.steps}: loss {np.mean(recent[-cfg.log_every:]):.4f}")
            if step % 25 == 0:
                fh.flush()
            if progress:
                progress(step / cfg.steps)
            if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                fh.flush()
                checkpoint(step)
                last_ckpt = time.time()
        checkpoint(step)
    log(f"\nwrote {out} after {step} steps")
    return out


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
    from .checkpoint import default_model_path, load_model
    from .outputs import write_atomically

    out = Path(out_model)
    if out.suffix != ".safetensors":
        raise DampInputError(f"Name the fine-tuned model '*.safetensors', not '{out.name}'.")
    base_path = Path(base or default_model_path())
    staging = out.with_name(f".{out.stem}.finetune")
    staging.mkdir(parents=True, exist_ok=True)
    try:
        check = held_out_check(rasters[0], crop)
        before = check(load_model(base_path, device="cpu"))
        log(f"held-out crop of {Path(rasters[0]).name} with Gaussian noise σ = 30: the base model gives {before:.2f} dB")
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
