"""How well the reading reads: accuracy, confusion matrix, severities, and routing specialisation.

On crops of the held-out scenes of ``../shared/data/hsi/test`` and ``test_rs`` (never seen by
the reading classifier, whose training scenes are listed in ``resources/models/reading.json``),
each task below is applied with a seeded degradation (``damp_engine.degrade``), in the raster's
own units, and read with ``damp_engine.reading.read_cube`` (the function behind ``damp prompt``,
the dock and the *Degradation prompt* algorithm). Printed:

- top-family accuracy on the issue's target tasks (noise, blur, coarse resolution, missing
  pixels, lost bands, complex noise, and the zero-shot motion blur and Poisson noise, which the
  classifier never saw in training); a read is right when its top family is one of the task's
  families (complex noise has two: Gaussian noise and its sparse extra);
- the confusion matrix (task group × top family) over every task, and each family's recall
  (share of the crops that carry the family in which it is read as present, p ≥ 0.5);
- calibration: the expected calibration error and Brier score over all (crop, family) pairs;
- severities: the noise σ against the σ applied, the blur width against the kernel's FWHM, the
  coarse factor, the missing share and the lost bands against what was applied;
- routing specialisation of a restoration model (default: the bundled one) through the public
  ``damp_engine.inspect.inspect_raster``: per decoder DAMoE block, the normalised mutual
  information NMI = 2·I(task; expert) / (H(task) + H(expert)) between the task and the block's
  dominant expert (largest mean gate), over the target tasks. Skipped with a note when the model
  or the API is not available (``--no-routing`` skips it on purpose).

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.reading [--crop 128] [--crops 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from damp_engine.degrade import degrade  # noqa: E402
from damp_engine.kernels import gaussian_kernel  # noqa: E402
from damp_engine.names import FAMILIES  # noqa: E402
from damp_engine.raster import RASTER_SUFFIXES, RasterReader  # noqa: E402
from damp_engine.reading import PRESENT, read_cube  # noqa: E402
from damp_engine.reading_model import load_reading_model  # noqa: E402
from damp_engine.scaling import measure_scaling, sample_grid  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hsi"
HELD_OUT = ("test", "test_rs")


@dataclass(frozen=True)
class Task:
    """One degradation of the benchmark: its group (a row of the confusion matrix), kind, parameters,
    the families it carries, and whether it counts towards the target accuracy."""

    group: str
    kind: str
    params: dict = field(default_factory=dict)
    families: frozenset = frozenset()
    target: bool = True

    @property
    def name(self) -> str:
        values = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}({values})" if values else self.kind


def _task(group: str, kind: str, families: set[str], target: bool = True, **params) -> Task:
    return Task(group, kind, params, frozenset(families), target)


TASKS: tuple[Task, ...] = (
    *(_task("noise", "gaussian_noise", {"gaussian_noise"}, sigma=s) for s in (10, 30, 50, 70)),
    *(_task("blur", "gaussian_blur", {"blur"}, ksize=k) for k in (9, 15)),
    *(_task("coarse resolution", "sr", {"coarse_resolution"}, factor=f) for f in (2, 4)),
    *(_task("missing pixels", "inpaint", {"missing_pixels"}, fraction=f) for f in (0.7, 0.8)),
    *(_task("lost bands", "band_loss", {"lost_bands"}, fraction=f) for f in (0.1, 0.2)),
    _task("complex noise", "complex", {"gaussian_noise", "stripes"}, extra="stripes"),
    _task("complex noise", "complex", {"gaussian_noise", "dead_lines"}, extra="deadlines"),
    _task("complex noise", "complex", {"gaussian_noise", "impulse_noise"}, extra="impulse"),
    _task("motion blur (zero-shot)", "motion_blur", {"blur"}, size=15, angle=45.0),
    _task("motion blur (zero-shot)", "motion_blur", {"blur"}, size=9, angle=0.0),
    _task("motion blur (zero-shot)", "motion_blur", {"blur"}, size=21, angle=120.0),
    *(_task("Poisson (zero-shot)", "poisson", {"signal_dependent_noise"}, scale=s) for s in (10, 30, 100)),
    _task("clean", "clean", {"clean"}, target=False),
    _task("stripes", "stripes", {"stripes"}, target=False),
    _task("dead lines", "deadlines", {"dead_lines"}, target=False),
    _task("impulse noise", "impulse", {"impulse_noise"}, target=False),
    _task("noise", "noniid_noise", {"gaussian_noise"}, target=False),
)
GROUPS = tuple(dict.fromkeys(t.group for t in TASKS))


def scenes() -> list[Path]:
    return sorted(p for folder in HELD_OUT for p in (DATA / folder).iterdir() if p.suffix.lower() in RASTER_SUFFIXES)


def crops(path: Path, side: int, count: int) -> tuple[list[np.ndarray], float]:
    """Up to ``count`` crops (C, side, side) of a scene in its own units (spread over it), and the
    factor that scales it to about [0, 1]; scenes smaller than ``side`` give one whole crop."""
    with RasterReader(path) as reader:
        factor = measure_scaling(reader).factor
        info = reader.info
        windows = sample_grid(info.width, info.height, window=min(side, info.width, info.height), count=2)
        picked = [windows[i] for i in np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int)]
        cubes = []
        for x0, y0, w, h in dict.fromkeys(picked):
            data, valid = reader.read(x0, y0, w, h)
            cubes.append(np.where(valid, data, 0).astype(np.float32))
    return cubes, factor


def seed_of(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def apply(task: Task, cube: np.ndarray, factor: float, seed: int) -> tuple[np.ndarray, dict]:
    """The degraded cube in the raster's own units, and the degradation's record."""
    if task.kind == "clean":
        return cube, {"bands": []}
    scaled = cube / np.float32(factor)
    degraded, record = degrade(scaled, task.kind, seed=seed, **task.params)
    return degraded * np.float32(factor), record.to_dict()


def entropy(counts: Counter) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values() if c)


def nmi(pairs: list[tuple[str, int]]) -> float:
    """Normalised mutual information 2·I(A; B) / (H(A) + H(B)) of paired labels (0 when both are constant)."""
    a, b, ab = Counter(p[0] for p in pairs), Counter(p[1] for p in pairs), Counter(pairs)
    ha, hb, hab = entropy(a), entropy(b), entropy(ab)
    return 0.0 if ha + hb == 0 else 2 * (ha + hb - hab) / (ha + hb)


def routing(cases: list[tuple[Task, np.ndarray, Path]], model: str | None) -> dict:
    """Per decoder block, NMI between task group and dominant expert, through ``inspect_raster``."""
    try:
        from damp_engine import load_model
        from damp_engine.inspect import inspect_raster
        from damp_engine.raster import open_raster

        loaded = load_model(model, device="cpu")
    except Exception as exc:  # noqa: BLE001 (the bench reports, it does not fail, when the model is away)
        return {"error": f"{type(exc).__name__}: {exc}"}
    chosen: dict[str, list[tuple[str, int]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as folder:
        for index, (task, cube, source) in enumerate(cases):
            path = Path(folder) / f"case{index}.tif"
            try:
                write_cube(path, cube, open_raster(source).wavelengths)
                inspection = inspect_raster(path, model=loaded)
            except Exception as exc:  # noqa: BLE001
                return {"error": f"{type(exc).__name__}: {exc}"}
            for block, gates in zip(inspection.block_names, inspection.gates):
                chosen[block].append((task.group, int(np.argmax(gates))))
    return {"model": loaded.name, "cases": len(cases),
            "nmi": {block: nmi(pairs) for block, pairs in chosen.items()},
            "experts_used": {block: sorted({e for _, e in pairs}) for block, pairs in chosen.items()}}


def write_cube(path: Path, cube: np.ndarray, wavelengths) -> None:
    """A float32 GeoTIFF of ``cube`` (C, H, W) with the scene's wavelengths (nm), for inspect_raster."""
    from osgeo import gdal

    ds = gdal.GetDriverByName("GTiff").Create(str(path), cube.shape[2], cube.shape[1], cube.shape[0], gdal.GDT_Float32)
    for i, band in enumerate(cube):
        out = ds.GetRasterBand(i + 1)
        out.WriteArray(band)
        if wavelengths:
            out.SetMetadataItem("wavelength", str(wavelengths[i]))
            out.SetMetadataItem("wavelength_units", "nm")
    ds = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=128, help="crop side in pixels (default 128)")
    parser.add_argument("--crops", type=int, default=2, help="crops per scene (default 2)")
    parser.add_argument("--reading-model", default=None, help="reading classifier (default: the bundled one)")
    parser.add_argument("--model", default=None, help="restoration model for the routing part (default: bundled)")
    parser.add_argument("--no-routing", action="store_true", help="skip the routing specialisation")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    reader_model = load_reading_model(args.reading_model)
    trained_on = set(reader_model.info.get("scenes", []))
    rows, cases, start = [], [], time.time()
    for path in scenes():
        if path.name in trained_on:
            raise SystemExit(f"{path.name} is among the classifier's training scenes; it cannot be held out.")
        pieces, factor = crops(path, args.crop, args.crops)
        for c, cube in enumerate(pieces):
            for task in TASKS:
                degraded, record = apply(task, cube, factor, seed_of(path.name, c, task.name))
                read = read_cube(degraded, model=reader_model)
                rows.append({"scene": path.name, "crop": c, "task": task, "factor": factor, "record": record,
                             "families": read.families, "top": read.top, "severity": read.severity,
                             "shape": degraded.shape})
                if task.target and c == 0:
                    cases.append((task, degraded, path))
        print(f"  {path.name:<36} {len(pieces)} crop(s)  {time.time() - start:6.0f} s", file=sys.stderr, flush=True)
    report = summarise(rows)
    if not args.no_routing:
        report["routing"] = routing(cases, args.model)
    show(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


def summarise(rows: list[dict]) -> dict:
    def right(r) -> bool:
        return r["top"] in r["task"].families

    target = [r for r in rows if r["task"].target]
    by_group = {g: [r for r in rows if r["task"].group == g] for g in GROUPS}
    confusion = {g: {f: sum(r["top"] == f for r in rs) for f in FAMILIES} for g, rs in by_group.items()}
    recall = {}
    for f in FAMILIES:
        carrying = [r for r in rows if f in r["task"].families]
        if carrying:
            recall[f] = sum(r["families"][f] >= PRESENT for r in carrying) / len(carrying)
    p = np.array([[r["families"][f] for f in FAMILIES] for r in rows])
    y = np.array([[f in r["task"].families for f in FAMILIES] for r in rows], float)
    bins = np.minimum((p.ravel() * 10).astype(int), 9)
    ece = sum(abs(p.ravel()[bins == b].mean() - y.ravel()[bins == b].mean()) * (bins == b).mean()
              for b in range(10) if (bins == b).any())
    return {
        "scenes": sorted({r["scene"] for r in rows}), "crops": len({(r["scene"], r["crop"]) for r in rows}),
        "reads": len(rows),
        "target_accuracy": sum(map(right, target)) / len(target), "target_reads": len(target),
        "accuracy_by_task": {t.name: _mean([right(r) for r in rows if r["task"] == t]) for t in TASKS},
        "accuracy_by_group": {g: _mean([right(r) for r in rs]) for g, rs in by_group.items()},
        "confusion": confusion, "recall": recall,
        "calibration": {"ece": float(ece), "brier": float(np.mean((p - y) ** 2))},
        "severity": severity_errors(rows),
    }


def _mean(values) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else float("nan")


def severity_errors(rows: list[dict]) -> dict:
    """How close the severities come to what was applied (relative errors are |est − true| / true)."""
    noise, blur, coarse, missing, lost = [], [], [], [], []
    for r in rows:
        task, sev, factor = r["task"], r["severity"], r["factor"]
        if task.kind == "gaussian_noise" and "noise_sigma" in sev:
            truth = task.params["sigma"] / 255 * factor
            noise.append((task.params["sigma"], abs(sev["noise_sigma"] - truth) / truth))
        if task.kind == "gaussian_blur" and "blur_width_px" in sev:
            k = gaussian_kernel(task.params["ksize"]).astype(np.float64)
            t = np.arange(k.shape[0]) - k.shape[0] // 2
            truth = 2.3548 * math.sqrt(float((k.sum(axis=0) * t ** 2).sum()))
            blur.append(abs(sev["blur_width_px"] - truth) / truth)
        if task.kind == "sr":
            coarse.append(sev.get("coarse_factor") == task.params["factor"])
        if task.kind == "inpaint" and "missing_fraction" in sev:
            missing.append(abs(sev["missing_fraction"] - task.params["fraction"]))
        if task.kind == "band_loss":
            lost.append(sev.get("lost_bands") == [b + 1 for b in r["record"]["bands"]])
    per_sigma = defaultdict(list)
    for sigma, err in noise:
        per_sigma[sigma].append(err)
    return {
        "noise_sigma_relative_error": {"median": _q(noise, 50), "max": _q(noise, 100), "within_10_percent":
                                       _mean(e <= 0.10 for _, e in noise), "by_sigma":
                                       {str(s): float(max(v)) for s, v in sorted(per_sigma.items())}},
        "blur_width_relative_error": {"median": _q([(0, e) for e in blur], 50), "max": _q([(0, e) for e in blur], 100)},
        "coarse_factor_exact": _mean(coarse), "missing_fraction_abs_error_max": max(missing, default=float("nan")),
        "lost_bands_exact": _mean(lost),
    }


def _q(pairs, q) -> float:
    values = [e for _, e in pairs]
    return float(np.percentile(values, q)) if values else float("nan")


def show(report: dict) -> None:
    print(f"Reading on held-out scenes ({', '.join(report['scenes'])}): {report['crops']} crops, "
          f"{report['reads']} reads")
    print(f"\nTop-family accuracy on the target tasks: {100 * report['target_accuracy']:.1f} % "
          f"({report['target_reads']} reads)")
    for group, value in report["accuracy_by_group"].items():
        print(f"  {group:<26}{100 * value:6.1f} %")
    short = {"clean": "clean", "gaussian_noise": "gauss", "signal_dependent_noise": "sigdep", "blur": "blur",
             "coarse_resolution": "coarse", "missing_pixels": "missing", "lost_bands": "lost",
             "stripes": "stripes", "dead_lines": "dead", "impulse_noise": "impulse"}
    print("\nConfusion matrix (rows: task; columns: top family read)")
    print(f"  {'':<26}" + "".join(f"{short[f]:>8}" for f in FAMILIES))
    for group, row in report["confusion"].items():
        print(f"  {group:<26}" + "".join(f"{row[f]:>8}" for f in FAMILIES))
    print("\nRecall per family (read as present, p >= 0.5, among the crops that carry it)")
    print("  " + ", ".join(f"{short[f]} {100 * v:.0f} %" for f, v in report["recall"].items()))
    cal = report["calibration"]
    print(f"\nCalibration over all (crop, family) pairs: ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}")
    sev = report["severity"]
    n = sev["noise_sigma_relative_error"]
    print(f"\nNoise σ vs applied (Gaussian σ 10-70/255): median error {100 * n['median']:.1f} %, max "
          f"{100 * n['max']:.1f} %, within 10 %: {100 * n['within_10_percent']:.0f} % of reads; max by σ: "
          + ", ".join(f"{s}: {100 * e:.1f} %" for s, e in n["by_sigma"].items()))
    b = sev["blur_width_relative_error"]
    print(f"Blur width (FWHM) vs the Gaussian kernel's: median error {100 * b['median']:.1f} %, "
          f"max {100 * b['max']:.1f} %")
    print(f"Coarse factor exact: {100 * sev['coarse_factor_exact']:.0f} %; lost bands exact: "
          f"{100 * sev['lost_bands_exact']:.0f} %; missing share max abs error "
          f"{sev['missing_fraction_abs_error_max']:.3f}")
    if "routing" in report:
        r = report["routing"]
        if "error" in r:
            print(f"\nRouting specialisation: not available ({r['error']})")
        else:
            print(f"\nRouting specialisation of {r['model']} over {r['cases']} cases (target tasks, first crop of "
                  "each scene): NMI(task; dominant expert) per decoder block")
            for block, value in r["nmi"].items():
                print(f"  {block:<12}{value:6.3f}   experts used {r['experts_used'][block]}")


if __name__ == "__main__":
    sys.exit(main())
