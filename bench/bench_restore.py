"""Benchmark tiled restoration: throughput, time split, and peak memory against raster size.

Throughput: `restore_raster` with the bundled model (a random-init `tiny` network of the same
size when the bundled weights are missing: speed does not depend on the weights) on seeded
synthetic rasters of 31 and 224 bands, in megapixel-bands per second (bands x rows x cols of the
output / wall time), with the read / prompt / network / write split from the run's report.

Memory: a fresh subprocess restores a W x W, 31-band Int16 raster (W = 1000 and 4000; 1000 and
2000 with --quick) and reports its own peak resident memory (VmHWM from /proc/self/status; the
parent's RUSAGE_CHILDREN would also count the parent's own size, inherited at fork) and the
resident memory just before the run. The network there is a deliberately tiny random-init preset
(``MEMORY_PRESET``, about 5 k parameters) so that 16 megapixels finish in minutes on two CPU
cores: the tiling, I/O and buffers are the engine's, only the network is smaller. GDAL's block
cache is capped by GDAL_CACHEMAX (--gdal-cache, default 64 MB) in the subprocesses; left at
GDAL's default (5 % of RAM) the cache, which holds raster blocks and not the engine's data, would
grow with the raster up to that cap.

Prints a Markdown summary and writes bench/results/restore.json.
Run: `.venv/bin/python bench/bench_restore.py [--quick] [--device cuda]`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal, osr

from damp_engine.checkpoint import DEFAULT_MODEL, LoadedModel, load_model, resolve_device
from damp_engine.model import DAMP, Preset, get_preset
from damp_engine.raster import bound_gdal_cache
from damp_engine.tiling import restore_raster

RESULTS = Path(__file__).resolve().parent / "results" / "restore.json"
MEMORY_PRESET = Preset(name="bench-nano", dim=4, enc_blocks=(0,), latent_blocks=1, dec_blocks=(1,),
                       refine_blocks=0, heads=(1, 1), ffn_expansion=1.0, emb=8)
BLOCK = 256
SEED = 0
ENMAP_SIZE = 1000  # an EnMAP-size scene: 224 bands x 1000 x 1000 (target: 20 s on two CPU cores)

gdal.UseExceptions()


def pattern(bands: int, size: int, seed: int) -> np.ndarray:
    """(bands, size, size) float32 in about [0.05, 0.95]: smooth spectra over smooth fields plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    spectra = np.linspace(0.0, 1.0, bands)[:, None, None]
    field = 0.5 + 0.25 * np.sin(7 * x + 3 * spectra) * np.cos(5 * y + spectra)
    return (field + 0.03 * rng.standard_normal((bands, size, size))).astype(np.float32)


def write_synthetic(path: Path, bands: int, size: int) -> Path:
    """A georeferenced size x size Int16 raster (scale 1e-4, nodata -32768), written block by block."""
    block = np.rint(pattern(bands, BLOCK, SEED) / 1e-4).astype(np.int16)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, bands, gdal.GDT_Int16,
                                              ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.SetNoDataValue(-32768)
        band.SetScale(1e-4)
        band.SetMetadataItem("wavelength", f"{420 + 2400 * b / max(1, bands - 1):.1f}")
        band.SetMetadataItem("wavelength_units", "nm")
        for y0 in range(0, size, BLOCK):
            for x0 in range(0, size, BLOCK):
                h, w = min(BLOCK, size - y0), min(BLOCK, size - x0)
                band.WriteArray(block[b, :h, :w], x0, y0)
    ds = None
    return path


def random_model(preset: Preset, device: str) -> LoadedModel:
    """A seeded random-init network of `preset`, ready for inference."""
    torch.manual_seed(SEED)
    target = resolve_device(device)
    return LoadedModel(DAMP(preset).to(target).eval(), {"name": f"random {preset.name}"}, target, Path(preset.name))


def bench_model(device: str) -> tuple[LoadedModel, bool]:
    """The bundled model, or a random-init tiny network of the same preset; True when bundled."""
    if DEFAULT_MODEL.is_file():
        return load_model(DEFAULT_MODEL, device=device), True
    return random_model(get_preset("tiny"), device), False


def throughput(workdir: Path, model: LoadedModel, bands: int, size: int, tile: int, batch: int | None) -> dict:
    """One restore run (after a warm-up on a small raster) and its megapixel-bands per second."""
    warmup = write_synthetic(workdir / f"warmup_{bands}.tif", bands, 64)
    restore_raster(warmup, workdir / f"warmup_{bands}_out.tif", model=model, tile=64, batch=1)
    src = write_synthetic(workdir / f"thr_{bands}_{size}.tif", bands, size)
    bound_gdal_cache(src)  # GDAL's block cache as `damp restore` sizes it
    report = restore_raster(src, workdir / f"thr_{bands}_{size}_out.tif", model=model, tile=tile, batch=batch)
    total = report.seconds["total"]
    return {"bands": bands, "width": size, "height": size, "tile": tile, "batch": report.batch, "tiles": report.tiles,
            "device": report.device, "seconds": report.seconds,
            "mpb_per_s": round(bands * size * size / 1e6 / total, 3)}


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """This process's resident memory now (VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(src: Path, out: Path) -> None:
    """Subprocess body: restore `src` with the tiny random preset and print the memory figures as JSON."""
    torch.set_num_threads(1)
    model = random_model(MEMORY_PRESET, "cpu")
    baseline = current_rss_mib()
    report = restore_raster(src, out, model=model, tile=256, halo=32, batch=4)
    print(json.dumps({"baseline_mib": round(baseline, 1), "peak_mib": round(peak_rss_mib(), 1),
                      "seconds": report.seconds, "tiles": report.tiles}))


def memory_run(workdir: Path, size: int, gdal_cache_mb: int) -> dict:
    """Restore a size x size raster in a fresh subprocess; its peak memory and time."""
    src = write_synthetic(workdir / f"mem_{size}.tif", 31, size)
    out = workdir / f"mem_{size}_out.tif"
    env = {**os.environ, "GDAL_CACHEMAX": str(gdal_cache_mb)}
    result = subprocess.run([sys.executable, __file__, "--child", str(src), str(out)], env=env,
                            capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    src.unlink()
    out.unlink()
    return {"size": size, **figures}


def markdown(results: dict) -> str:
    """The results as a short Markdown report."""
    lines = ["## Tiled restoration benchmark", "",
             f"Model for throughput: {results['model']}; device {results['device']}, "
             f"{results['torch_threads']} torch thread(s), {os.cpu_count()} CPU(s).", "",
             "| raster | tiles | MPB/s | analysis s | read s | network s | write s | total s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["throughput"]:
        s = r["seconds"]
        lines.append(f"| {r['bands']} x {r['height']} x {r['width']} | {r['tiles']} | {r['mpb_per_s']:.2f} | "
                     f"{s['analysis']:.2f} | {s['read']:.2f} | {s['network']:.2f} | {s['write']:.2f} | "
                     f"{s['total']:.2f} |")
    mem = results["memory"]
    per_pixel = {r["bands"]: r["seconds"]["total"] / (r["width"] * r["height"]) for r in results["throughput"][:2]}
    if len(per_pixel) == 2:
        ratio = per_pixel[max(per_pixel)] / per_pixel[min(per_pixel)]
        lines += ["", f"Time per pixel, {max(per_pixel)} bands over {min(per_pixel)} bands (same model, one run): "
                      f"**{ratio:.2f} x** (target <= 2.5 x)."]
    enmap = [r for r in results["throughput"] if r["width"] == ENMAP_SIZE]
    if enmap:
        lines += [f"EnMAP-size raster (224 x {ENMAP_SIZE} x {ENMAP_SIZE}): **{enmap[0]['seconds']['total']:.1f} s** "
                  "(target <= 20 s)."]
    lines += ["", f"Peak memory ({mem['preset']} random-init network, 31 bands, GDAL_CACHEMAX "
                  f"{mem['gdal_cachemax_mb']} MB, one fresh process per raster):", "",
              "| raster | resident before run MiB | peak MiB | seconds |", "|---|---|---|---|"]
    for r in mem["runs"]:
        lines.append(f"| {r['size']} x {r['size']} | {r['baseline_mib']:.0f} | {r['peak_mib']:.0f} | "
                     f"{r['seconds']['total']:.1f} |")
    lines += ["", f"Peak ratio large / small: **{mem['ratio_peak']:.3f}** (must be < 1.3); ratio of the "
                  f"growth during the run: {mem['ratio_growth']:.3f}.",
              f"Benchmark wall time: {results['wall_seconds']:.0f} s."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller rasters (memory: 1000 vs 2000 px)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto for the throughput runs (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads for the throughput runs (default: torch's)")
    parser.add_argument("--gdal-cache", type=int, default=64, help="GDAL_CACHEMAX in MB for the memory runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results path")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        memory_child(*args.child)
        return 0
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, bundled = bench_model(args.device)
    cases = ([(31, 256, 256, None), (224, 128, 256, None)] if args.quick else
             [(31, 512, 256, None), (224, 256, 256, None), (224, ENMAP_SIZE, 256, None)])
    sizes = (1000, 2000) if args.quick else (1000, 4000)
    with tempfile.TemporaryDirectory(prefix="damp_bench_") as tmp:
        workdir = Path(tmp)
        runs = [throughput(workdir, model, *case) for case in cases]
        memory = [memory_run(workdir, size, args.gdal_cache) for size in sizes]
    small, large = memory
    results = {
        "model": model.name + ("" if bundled else " (bundled weights missing; same preset, random weights)"),
        "device": str(model.device), "torch_threads": torch.get_num_threads(), "quick": args.quick,
        "platform": platform.platform(), "throughput": runs,
        "memory": {"preset": MEMORY_PRESET.name, "gdal_cachemax_mb": args.gdal_cache, "runs": memory,
                   "ratio_peak": round(large["peak_mib"] / small["peak_mib"], 3),
                   "ratio_growth": round((large["peak_mib"] - large["baseline_mib"])
                                         / (small["peak_mib"] - small["baseline_mib"]), 3)},
    }
    results["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    print(f"\nWrote {args.out}")
    return 0 if results["memory"]["ratio_peak"] < 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
