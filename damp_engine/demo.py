"""`make demo`: degrade the bundled EnMAP sample, restore it with the bundled model, and show the result.

Writes under ``out/demo/`` (or ``--out``): ``degraded.tif`` (seeded complex noise plus stripes),
``restored.tif``, ``report.json`` (the run's RestoreReport) and ``quicklook.png`` (true colour,
clean | degraded | restored side by side), and prints PSNR / SAM before and after.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

from .errors import DampInputError
from .raster import RasterReader

SAMPLE = Path(__file__).resolve().parent.parent / "resources" / "sample" / "enmap_potsdam_sample.tif"
STRETCH = (2.0, 98.0)  # percentiles mapped to black and white in the quick-look
GAP = 4                # pixels between the panels of the quick-look
QUICKLOOK_ROWS = 300   # small rasters are enlarged (pixel-replicated) to about this height


def true_colour(path: Path, bands: tuple[int, int, int]) -> np.ndarray:
    """(3, rows, cols) physical values of the given 0-based bands, NaN where nodata."""
    with RasterReader(path) as reader:
        return np.stack([reader.read_band(b) for b in bands])


def stretch_limits(rgb: np.ndarray) -> np.ndarray:
    """(3, 2) per-channel 2nd and 98th percentiles of the valid values."""
    return np.stack([np.nanpercentile(channel, STRETCH) for channel in rgb])


def to_bytes(rgb: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """Linear stretch of each channel between its limits to 0..255 (nodata black)."""
    low, high = limits[:, 0, None, None], limits[:, 1, None, None]
    scaled = (rgb - low) / np.maximum(high - low, 1e-12)
    return np.nan_to_num(np.clip(scaled, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write a (3, rows, cols) uint8 image as PNG through GDAL (MEM dataset, then CreateCopy)."""
    mem = gdal.GetDriverByName("MEM").Create("", image.shape[2], image.shape[1], 3, gdal.GDT_Byte)
    for i in range(3):
        mem.GetRasterBand(i + 1).WriteArray(image[i])
    gdal.GetDriverByName("PNG").CreateCopy(str(path), mem)
    return path


def quicklook(path: Path, rasters: list[Path], bands: tuple[int, int, int]) -> Path:
    """Side-by-side true-colour PNG of `rasters`, all stretched with the first one's limits."""
    panels = [true_colour(p, bands) for p in rasters]
    limits = stretch_limits(panels[0])
    zoom = max(1, round(QUICKLOOK_ROWS / panels[0].shape[1]))
    images = [to_bytes(panel, limits).repeat(zoom, axis=1).repeat(zoom, axis=2) for panel in panels]
    gap = np.full((3, images[0].shape[1], GAP), 255, np.uint8)
    pieces = [piece for image in images for piece in (image, gap)][:-1]
    return write_png(path, np.concatenate(pieces, axis=2))


def run(out: Path, model: str | None, device: str, seed: int) -> None:
    """Degrade, restore, score, and draw the quick-look."""
    from .checkpoint import load_model
    from .scene import degrade_raster, evaluate_rasters
    from .tiling import restore_raster

    loaded = load_model(model, device=device)
    out.mkdir(parents=True, exist_ok=True)
    degraded, restored = out / "degraded.tif", out / "restored.tif"
    record = degrade_raster(SAMPLE, degraded, "complex", seed=seed, extra="stripes")
    print(f"Degraded {SAMPLE.name}: {record.kind} {record.params} (seed {seed}) -> {degraded}")
    report = restore_raster(degraded, restored, model=loaded, report=out / "report.json")
    print(report.summary())
    before, after = evaluate_rasters(SAMPLE, degraded), evaluate_rasters(SAMPLE, restored)
    print(f"{'':10}{'PSNR (dB)':>10}{'SAM (deg)':>11}")
    for name, scores in (("degraded", before), ("restored", after)):
        print(f"{name:10}{scores['psnr']:>10.2f}{scores['sam']:>11.2f}")
    with RasterReader(SAMPLE) as reader:
        bands = reader.info.rgb_bands()
    png = quicklook(out / "quicklook.png", [SAMPLE, degraded, restored], bands)
    print(f"Quick-look (clean | degraded | restored, bands {[b + 1 for b in bands]}): {png}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m damp_engine.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--model", help="a .safetensors model (default: the bundled model)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the degradation (default 0)")
    args = parser.parse_args(argv)
    try:
        run(args.out, args.model, args.device, args.seed)
    except DampInputError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
