"""Fit the blur-width estimator of `damp_engine.deblur` on the training scenes and write it.

Each training raster is cropped to a random size, blurred by a Gaussian of random width σ (none
in a third of the draws), given a little noise in half of them, and analysed as `damp restore`
analyses a scene (sample windows, spectral basis, first eigen-image); the estimator learns σ
from the spectrum features of the angular sectors of that eigen-image (`sector_summary`). Over-estimates cost three
times under-estimates in the loss: deconvolving a sharp scene harms it, under-deconvolving a
blurred one only gains less. Motion-blurred draws (random length and angle) are taught σ = 0:
a Gaussian deconvolution makes them worse. The held-out scenes (``test``, ``test_rs``) are only
measured.

    .venv/bin/python scripts/fit_blur_estimator.py ../shared/data/hsi

writes damp_engine/blur_estimator.json (about ten minutes on two cores).
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from damp_engine.deblur import (BLUR_COMPONENTS, ESTIMATOR_PATH, MAX_BLUR, MIN_BLUR, BlurEstimator, sector_summary,
                                 spectrum_features)
from damp_engine.kernels import blur, motion_kernel
from damp_engine.scene_analysis import fit_windows, sample_windows
from damp_engine.training_data import list_rasters, load_scene

FIT_FOLDERS = ("train", "train_rs")
HELD_OUT_FOLDERS = ("test", "test_rs")
CROPS = (64, 96, 128, 192, 256)
MOTION_LENGTHS = (7, 9, 11, 15, 21)
MOTION_DRAWS = 8  # motion-blurred draws per raster, taught σ = 0 (a Gaussian deconvolution harms them)
OVERESTIMATE_COST = 3.0
WEIGHT_DECAY = 1e-3


def gaussian(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3.5 * sigma))
    t = np.arange(-radius, radius + 1)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def draw(cube: np.ndarray, rng: np.random.Generator, motion: bool = False) -> tuple[np.ndarray, float]:
    """(features of the ``BLUR_COMPONENTS`` leading eigen-images, σ) of one random crop, blur and noise
    of a scaled cube (C, H, W); with `motion`, a motion blur of random length and angle instead
    (σ = -1: not a Gaussian blur)."""
    _, h, w = cube.shape
    side = int(min(rng.choice(CROPS), h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = cube[:, y:y + side, x:x + side]
    if motion:
        sigma = -1.0
        crop = blur(crop, motion_kernel(int(rng.choice(MOTION_LENGTHS)), float(rng.uniform(0, 180))))
    else:
        sigma = 0.0 if rng.random() < 1 / 3 else float(rng.uniform(0.4, 3.2))
        if sigma:
            crop = blur(crop, gaussian(sigma))
    if rng.random() < 0.5:
        crop = crop + np.float32(rng.uniform(0, 1.5) / 255) * rng.standard_normal(crop.shape, dtype=np.float32)
    windows = np.stack([crop[:, y0:y0 + wh, x0:x0 + ww] for x0, y0, ww, wh in sample_windows(side, side)])
    _, components = fit_windows(windows, np.ones(windows.shape, bool), None)
    return np.stack([spectrum_features(components[:, i].numpy()) for i in range(BLUR_COMPONENTS)]), sigma


def dataset(root: Path, folders: tuple[str, ...], draws: int, rng: np.random.Generator,
            motion: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and σ of `draws` Gaussian-or-sharp draws and `motion` motion-blur draws per raster."""
    features, sigmas = [], []
    for path in list_rasters([root / f for f in folders]):
        scene = load_scene(path, 3, 32)
        if scene is None:
            continue
        for i in range(draws + motion):
            f, s = draw(scene.cube, rng, motion=i >= draws)
            features.append(f)
            sigmas.append(s)
    return np.asarray(features), np.asarray(sigmas)


def fit(features: np.ndarray, sigmas: np.ndarray, steps: int = 4000) -> BlurEstimator:
    """The estimator of σ from draws' features (N, SECTORS, bins); motion blurs (σ = -1) are taught 0."""
    torch.manual_seed(0)
    summary = np.stack([sector_summary(f) for f in features])
    mean, std = summary.mean(0), summary.std(0) + 1e-6
    x = torch.tensor((summary - mean) / std, dtype=torch.float32)
    y = torch.tensor(np.maximum(sigmas, 0.0), dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 32), torch.nn.GELU(approximate="tanh"),
                              torch.nn.Linear(32, 32), torch.nn.GELU(approximate="tanh"), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), 3e-3, weight_decay=WEIGHT_DECAY)
    for _ in range(steps):
        error = net(x)[:, 0] - y
        loss = torch.where(error > 0, OVERESTIMATE_COST * error.abs(), error.abs()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    layers = tuple((m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
                   for m in net if isinstance(m, torch.nn.Linear))
    return BlurEstimator(mean, std, layers)


def report(estimator: BlurEstimator, features: np.ndarray, sigmas: np.ndarray) -> dict:
    """The estimates as the engine uses them (`estimate_blur`'s rule: the least over the leading
    eigen-images, below ``MIN_BLUR`` 0): sharp draws called blurred,
    errors on Gaussian blurs, and motion blurs (σ = -1) that would be deconvolved."""
    raw = np.array([min(estimator(component) for component in f) for f in features])
    used = np.where(raw < MIN_BLUR, 0.0, np.minimum(raw, MAX_BLUR))
    sharp, motion = sigmas == 0, sigmas < 0
    gaussian = ~sharp & ~motion
    return {"draws": int(sigmas.size), "sharp_draws": int(sharp.sum()),
            "sharp_called_blurred": int((used[sharp] > 0).sum()),
            "largest_sigma_on_sharp": round(float(used[sharp].max(initial=0.0)), 3),
            "blurred_draws": int(gaussian.sum()),
            "blurred_mean_abs_error": round(float(np.abs(used - sigmas)[gaussian].mean()), 3),
            "blurred_left_alone": int((used[gaussian] == 0).sum()),
            "blurred_overestimated_by_0.3": int((used - sigmas)[gaussian].__gt__(0.3).sum()),
            "motion_draws": int(motion.sum()),
            "motion_deconvolved": int((used[motion] > 0).sum()),
            "largest_sigma_on_motion": round(float(used[motion].max(initial=0.0)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder holding train, train_rs, test, test_rs")
    parser.add_argument("--draws", type=int, default=24, help="draws per training raster")
    parser.add_argument("--out", type=Path, default=ESTIMATOR_PATH)
    parser.add_argument("--cache", type=Path, help="keep the drawn features in this .npz and reuse them")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    if args.cache is not None and args.cache.exists():
        drawn = np.load(args.cache)
        features, sigmas, held_features, held_sigmas = (drawn[k] for k in ("fit", "fit_sigma", "held", "held_sigma"))
    else:
        rng = np.random.default_rng(0)
        features, sigmas = dataset(args.data, FIT_FOLDERS, args.draws, rng, MOTION_DRAWS)
        held_features, held_sigmas = dataset(args.data, HELD_OUT_FOLDERS, args.draws, rng, MOTION_DRAWS)
        if args.cache is not None:
            np.savez(args.cache, fit=features, fit_sigma=sigmas, held=held_features, held_sigma=held_sigmas)
    estimator = fit(features[:, 0], sigmas)  # the first eigen-image's features teach it
    result = {"estimator": estimator.to_dict(),
              "fitted_on": list(FIT_FOLDERS), "draws_per_raster": args.draws,
              "command": "python scripts/fit_blur_estimator.py ../shared/data/hsi",
              "fit": report(estimator, features, sigmas),
              "held_out": report(estimator, held_features, held_sigmas),
              "seconds": round(time.time() - start, 1)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("fit", "held_out", "seconds")}, indent=1))


if __name__ == "__main__":
    main()
