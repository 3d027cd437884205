"""Train the reading classifier and write it as numbers: resources/models/reading.json.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_reading.py            # about 5 CPU minutes

What it does, deterministically (same seed, same data: the same file):

1. Loads every clean training scene of ``../shared/data/hsi/train`` and ``train_rs`` (never the
   test folders), scaled to about [0, 1] by ``measure_scaling``, without bands that hold no
   data or are constant in the source (one AVIRIS scene ships 22 zero bands).
2. Draws ``--per-scene`` crops of 64 to 160 pixels from each scene, each with one degradation
   drawn from :data:`MIX` (seeded by scene and sample), and surveys the crop exactly as
   ``damp_engine.reading`` surveys a raster (``survey_cube``: the same windows, scaling and
   estimators), giving the classifier's features and the multi-label truth.

   The mix covers the paper's training degradations (``damp_engine.degrade``) and the
   remote-sensing ones, at wider strengths than the restoration model trains on, plus a few
   mixtures. Signal-dependent noise is taught with *Gaussian* noise of variance
   gain·x + floor² (the Poisson-Gaussian model), never with Poisson counts; blur only with
   Gaussian kernels (round, and stretched along the rows or the columns). Poisson noise and
   motion blur (line kernels at any angle) stay zero-shot: ``python -m bench.reading`` checks
   that they read as signal-dependent noise and blur.
3. Fits one L2-regularised logistic regression per degradation family on standardised
   features (Newton's method), the regularisation chosen by 5-fold cross-validation grouped by
   scene; calibrates each family's probability with Platt scaling on the out-of-fold logits
   (scenes the fold's model never saw); clean is no degradation, Π (1 − p) over the families;
   records the clean ranges of the six metrics (5th-95th percentile over the clean crops) and
   the calibration of the blur-width estimator (least squares of the kernel's σ on the raw
   estimate, over the Gaussian-blurred crops).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from damp_engine.degrade import degrade  # noqa: E402
from damp_engine.kernels import blur  # noqa: E402
from damp_engine.names import FAMILIES, METRIC_NAMES  # noqa: E402
from damp_engine.raster import RASTER_SUFFIXES, RasterReader  # noqa: E402
from damp_engine.reading_model import FEATURES, ReadingModel, features  # noqa: E402
from damp_engine.scaling import measure_scaling  # noqa: E402
from damp_engine.severity_blur import blur_sigma  # noqa: E402
from damp_engine.severity_gaps import CONSTANT  # noqa: E402
from damp_engine.survey import survey_cube  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hsi"
FOLDERS = ("train", "train_rs")
CROPS = (64, 96, 128, 160)
MARGIN = 8            # the crop is degraded with this margin, then cut at a random phase
LAMBDAS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1)  # L2 strengths tried (per sample, on z-scores)
FOLDS = 5


# ----------------------------------------------------------------------------- degradations

def _gauss_sigma(ksize: int) -> float:
    return 0.3 * ((ksize - 1) / 2 - 1) + 0.8


def _signal_dependent(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Gaussian noise with variance gain·max(x, 0) + floor² (Poisson-Gaussian, not Poisson counts)."""
    gain = float(np.exp(rng.uniform(np.log(1 / 150), np.log(1 / 6))))
    floor = float(rng.uniform(0, 4)) / 255 if rng.random() < 0.5 else 0.0
    std = np.sqrt(gain * np.maximum(x, 0) + floor ** 2).astype(np.float32)
    return x + std * rng.standard_normal(x.shape, dtype=np.float32), {"gain": gain, "floor": floor}


def _elongated_kernel(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A Gaussian PSF stretched along the rows or the columns (σ 1.2-3 px along, 0.3-0.8 px across).

    Blur along one direction only (an astigmatic lens, along-track smear) is still blur; the
    classifier sees it with Gaussian profiles only. Motion blur, a line (box) profile at any
    angle, stays unseen.
    """
    along, across = float(rng.uniform(1.2, 3.0)), float(rng.uniform(0.3, 0.8))
    half = int(np.ceil(3 * along))
    t = np.arange(-half, half + 1, dtype=np.float64)
    long, short = np.exp(-t ** 2 / (2 * along ** 2)), np.exp(-t ** 2 / (2 * across ** 2))
    kernel = np.outer(long, short) if rng.random() < 0.5 else np.outer(short, long)
    return (kernel / kernel.sum()).astype(np.float32), {"sigma_along": along, "sigma_across": across}


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2 ** 31))


def _apply(kind: str, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, set[str], dict]:
    """Degrade the crop ``x``: (degraded, families present, parameters)."""
    seed = _seed(rng)
    if kind == "clean":
        return x, {"clean"}, {}
    if kind == "gaussian_noise":
        sigma = float(np.exp(rng.uniform(np.log(5), np.log(80))))
        return degrade(x, kind, seed, sigma=sigma)[0], {"gaussian_noise"}, {"sigma": sigma}
    if kind == "noniid_noise":
        levels = [5, 10, 20, 30, 40, 50, 60, 70]
        sigmas = sorted(rng.choice(levels, size=int(rng.integers(2, 5)), replace=False).tolist())
        return degrade(x, kind, seed, sigmas=sigmas)[0], {"gaussian_noise"}, {"sigmas": sigmas}
    if kind == "signal_dependent":
        y, params = _signal_dependent(x, rng)
        return y, {"signal_dependent_noise"}, params
    if kind == "gaussian_blur":
        ksize = int(rng.choice([5, 7, 9, 11, 13, 15]))
        return degrade(x, kind, seed, ksize=ksize)[0], {"blur"}, {"ksize": ksize, "psf_sigma": _gauss_sigma(ksize)}
    if kind == "elongated_blur":
        kernel, params = _elongated_kernel(rng)
        return blur(x, kernel), {"blur"}, params
    if kind == "sr":
        factor = int(rng.choice([2, 4]))
        return degrade(x, kind, seed, factor=factor)[0], {"coarse_resolution"}, {"factor": factor}
    if kind == "inpaint":
        fraction = float(rng.uniform(0.05, 0.85))
        return degrade(x, kind, seed, fraction=fraction)[0], {"missing_pixels"}, {"fraction": fraction}
    if kind == "band_loss":
        fraction = float(rng.uniform(0.03, 0.25))
        return degrade(x, kind, seed, fraction=fraction)[0], {"lost_bands"}, {"fraction": fraction}
    if kind == "stripes":
        params = {"band_fraction": float(rng.uniform(0.2, 0.6)), "amplitude": float(rng.uniform(0.03, 0.15))}
        return degrade(x, kind, seed, **params)[0], {"stripes"}, params
    if kind == "deadlines":
        params = {"band_fraction": float(rng.uniform(0.2, 0.6))}
        return degrade(x, kind, seed, **params)[0], {"dead_lines"}, params
    if kind == "impulse":
        params = {"band_fraction": float(rng.uniform(0.2, 0.6)), "fraction": float(rng.uniform(0.03, 0.2))}
        return degrade(x, kind, seed, **params)[0], {"impulse_noise"}, params
    if kind == "complex":
        y, record = degrade(x, kind, seed)
        extra = {"stripes": "stripes", "deadlines": "dead_lines", "impulse": "impulse_noise"}[record.params["extra"]]
        return y, {"gaussian_noise", extra}, {"extra": record.params["extra"]}
    if kind == "noise_and_band_loss":
        sigma = float(rng.uniform(10, 50))
        y = degrade(x, "gaussian_noise", seed, sigma=sigma)[0]
        return degrade(y, "band_loss", seed + 1, fraction=float(rng.uniform(0.05, 0.2)))[0], \
            {"gaussian_noise", "lost_bands"}, {"sigma": sigma}
    if kind == "noise_and_inpaint":
        sigma = float(rng.uniform(10, 50))
        y = degrade(x, "gaussian_noise", seed, sigma=sigma)[0]
        return degrade(y, "inpaint", seed + 1, fraction=float(rng.uniform(0.1, 0.8)))[0], \
            {"gaussian_noise", "missing_pixels"}, {"sigma": sigma}
    raise ValueError(kind)


MIX: dict[str, float] = {  # kind → relative frequency in the training set
    "clean": 2.0, "gaussian_noise": 1.5, "noniid_noise": 1.0, "signal_dependent": 1.5, "gaussian_blur": 1.5,
    "elongated_blur": 0.75, "sr": 1.0, "inpaint": 1.0, "band_loss": 1.0, "stripes": 1.0, "deadlines": 1.0,
    "impulse": 1.0,
    "complex": 1.5, "noise_and_band_loss": 0.5, "noise_and_inpaint": 0.5,
}


# ----------------------------------------------------------------------------- data

def scenes(folders: tuple[str, ...] = FOLDERS) -> list[Path]:
    return sorted(p for f in folders for p in (DATA / f).iterdir() if p.suffix.lower() in RASTER_SUFFIXES)


def load_scene(path: Path) -> np.ndarray:
    """The scene scaled to about [0, 1], without bands that hold no data or are constant."""
    with RasterReader(path) as reader:
        scaling = measure_scaling(reader)
        cube, valid = reader.read_all()
    cube = (cube / np.float32(scaling.factor))[scaling.good_bands]
    valid = valid[scaling.good_bands]
    keep = np.array([np.ptp(b[v]) > CONSTANT if v.any() else False for b, v in zip(cube, valid)])
    cube = np.where(valid, cube, 0.0)[keep]
    return cube.astype(np.float32)


def samples(path: Path, index: int, per_scene: int, seed: int) -> list[dict]:
    """The training samples of one scene: features, labels, and what was applied."""
    cube = load_scene(path)
    rng = np.random.default_rng([seed, index])
    kinds, weights = list(MIX), np.array(list(MIX.values()))
    out = []
    for _ in range(per_scene):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        _, h, w = cube.shape
        side = min(int(rng.choice(CROPS)), h - MARGIN, w - MARGIN)
        y0, x0 = int(rng.integers(0, h - side - MARGIN + 1)), int(rng.integers(0, w - side - MARGIN + 1))
        crop = cube[:, y0:y0 + side + MARGIN, x0:x0 + side + MARGIN]
        degraded, labels, params = _apply(kind, crop, rng)
        oy, ox = (int(v) for v in rng.integers(0, MARGIN, size=2))
        degraded = degraded[:, oy:oy + side, ox:ox + side]
        survey, factor = survey_cube(degraded)
        out.append({"scene": path.name, "kind": kind, "labels": sorted(labels), "params": params,
                    "features": features(survey), "metrics": survey.metrics,
                    "blur_raw": float(np.mean(blur_sigma(survey.rho))),
                    "noise_sigma": float(np.nanmedian(survey.sigma)) * factor if np.isfinite(survey.sigma).any()
                    else float("nan")})
    return out


# ----------------------------------------------------------------------------- fitting

def fit_logistic(z: np.ndarray, y: np.ndarray, lam: float, iterations: int = 50) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method: (weights (D,), bias). The bias is not penalised.

    Minimises mean log-loss + lam/2 · |w|², which is strictly convex, so Newton converges.
    """
    n, d = z.shape
    a = np.hstack([z, np.ones((n, 1))])
    theta = np.zeros(d + 1)
    penalty = np.full(d + 1, lam)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ theta, -50, 50)))
        grad = a.T @ (p - y) / n + penalty * theta
        hess = (a * (p * (1 - p))[:, None]).T @ a / n + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:-1], float(theta[-1])


def fit_platt(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling p = σ(a·logit + c) by Newton's method on the log-loss, with Platt's target
    smoothing (labels (N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2)) so that separable data stay finite."""
    positives, negatives = y.sum(), (1 - y).sum()
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    a = np.stack([logit, np.ones_like(logit)], axis=1)
    theta = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ theta, -50, 50)))
        grad = a.T @ (p - target)
        hess = (a * (p * (1 - p))[:, None]).T @ a + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(theta[0]), float(theta[1])


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = np.nanmean(values, axis=0)
    scale = np.nanstd(values, axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (values - mean) / scale
    return np.where(np.isfinite(z), z, 0.0), mean, scale


def folds_of(scene_names: list[str], folds: int) -> np.ndarray:
    """Fold of each sample: scenes dealt round-robin in sorted order, so a scene is in one fold only."""
    order = {name: i % folds for i, name in enumerate(sorted(set(scene_names)))}
    return np.array([order[s] for s in scene_names])


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE over all (sample, family) pairs: Σ_bins share · |mean p − observed frequency|."""
    p, y = p.ravel(), y.ravel()
    edges = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(p[edges == b].mean() - y[edges == b].mean()) * (edges == b).mean()
                     for b in range(bins) if (edges == b).any()))


def train(rows: list[dict], seed: int) -> tuple[ReadingModel, dict]:
    families = FAMILIES[1:]  # clean is derived: Π (1 − p) over these
    values = np.array([[r["features"][f] for f in FEATURES] for r in rows], float)
    y = np.array([[f in r["labels"] for f in families] for r in rows], float)
    truth = np.array([[f in r["labels"] for f in FAMILIES] for r in rows], float)
    z, mean, scale = standardise(values)
    fold = folds_of([r["scene"] for r in rows], FOLDS)

    def out_of_fold(lam: float) -> np.ndarray:
        logits = np.zeros_like(y)
        for k in range(FOLDS):
            train_, test = fold != k, fold == k
            zt, mu, sd = standardise(values[train_])
            ztest = (values[test] - mu) / sd
            ztest = np.where(np.isfinite(ztest), ztest, 0.0)
            for j in range(len(families)):
                w, b = fit_logistic(zt, y[train_, j], lam)
                logits[test, j] = ztest @ w + b
        return logits

    scores = {}
    for lam in LAMBDAS:
        logits = out_of_fold(lam)
        scores[lam] = (log_loss(1 / (1 + np.exp(-logits)), y), logits)
        print(f"  lambda {lam:<6} out-of-fold log-loss {scores[lam][0]:.4f}", flush=True)
    lam = min(scores, key=lambda k: scores[k][0])
    oof = scores[lam][1]
    platt = np.array([fit_platt(oof[:, j], y[:, j]) for j in range(len(families))])
    weights, bias = [], []
    for j in range(len(families)):
        w, b = fit_logistic(z, y[:, j], lam)
        weights.append(w)
        bias.append(b)
    degraded = 1 / (1 + np.exp(-(platt[:, 0] * oof + platt[:, 1])))
    calibrated = np.concatenate([np.prod(1 - degraded, axis=1, keepdims=True), degraded], axis=1)
    top = calibrated.argmax(axis=1)
    top_ok = truth[np.arange(len(truth)), top] > 0
    clean = np.array([r["kind"] == "clean" for r in rows])
    metrics = np.array([[r["metrics"][m] for m in METRIC_NAMES] for r in rows])
    ranges = {m: (float(np.percentile(metrics[clean, i], 5)), float(np.percentile(metrics[clean, i], 95)))
              for i, m in enumerate(METRIC_NAMES)}
    blurred = [r for r in rows if r["kind"] == "gaussian_blur" and r["blur_raw"] > 0]
    raw = np.array([r["blur_raw"] for r in blurred])
    sigma = np.array([r["params"]["psf_sigma"] for r in blurred])
    slope, offset = np.polyfit(raw, sigma, 1) if len(blurred) >= 3 else (1.0, 0.0)
    info = {
        "script": "scripts/train_reading.py", "seed": seed, "samples": len(rows),
        "scenes": sorted({r["scene"] for r in rows}), "folders": list(FOLDERS), "crops": list(CROPS),
        "mix": MIX, "lambda": lam, "folds": FOLDS,
        "out_of_fold": {"top_accuracy": float(top_ok.mean()), "log_loss": scores[lam][0],
                        "calibrated_log_loss": log_loss(calibrated, truth),
                        "expected_calibration_error": expected_calibration_error(calibrated, truth),
                        "recall": {f: float(((calibrated[:, j] >= 0.5) & (truth[:, j] > 0)).sum()
                                            / max(truth[:, j].sum(), 1))
                                   for j, f in enumerate(FAMILIES)}},
        "zero_shot_never_trained": ["poisson", "motion_blur"],
    }
    model = ReadingModel(
        features=FEATURES, mean=mean, scale=scale, weights=np.array(weights), bias=np.array(bias),
        platt=platt, clean_ranges=ranges, blur_calibration=(float(slope), float(offset)), info=info)
    return model, info


def _rounded(value):
    """Floats to 8 significant digits (a stable, readable file); everything else unchanged."""
    if isinstance(value, float):
        return float(f"{value:.8g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "resources" / "models" / "reading.json"))
    parser.add_argument("--per-scene", type=int, default=14, help="degraded crops per training scene (default 14)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", default=None, help="cache of the surveyed samples (JSON); reused when present")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    cache = Path(args.samples) if args.samples else None
    if cache is not None and cache.exists():
        rows = json.loads(cache.read_text())
    else:
        rows, start = [], time.time()
        for index, path in enumerate(scenes()):
            rows += samples(path, index, args.per_scene, args.seed)
            print(f"  {index + 1:>2} {path.name:<44} {len(rows):>5} samples  {time.time() - start:6.0f} s", flush=True)
        if cache is not None:
            cache.write_text(json.dumps(rows))
    model, info = train(rows, args.seed)
    Path(args.out).write_text(json.dumps(_rounded(model.to_dict()), indent=1) + "\n", encoding="utf-8")
    oof = info["out_of_fold"]
    print(f"wrote {args.out}: {info['samples']} samples from {len(info['scenes'])} scenes, lambda {info['lambda']}; "
          f"out-of-fold top accuracy {100 * oof['top_accuracy']:.1f} %, ECE {oof['expected_calibration_error']:.3f}")
    print("  recall: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in oof["recall"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
