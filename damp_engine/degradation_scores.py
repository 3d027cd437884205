"""Quality of the degraded part of a raster on its own: the values a recorded degradation changed.

A whole-raster score hides what a restoration did where it mattered. Stripes on a third of the
bands leave the other two thirds untouched in the degraded raster, so its "before" PSNR averages
damaged bands with perfect ones, while the restored raster is changed everywhere; lost bands are
1 band in 10. When the raster carries the record of what was applied (``DAMP_DEGRADATION``, JSON
metadata written by ``damp degrade`` / *Simulate degradation* and kept by restoration), this
module finds those values again and scores them alone, beside the whole-raster score of
``damp_engine.scene.evaluate_rasters``.

Which values: the record replays exactly (``degrade(x, kind, seed, **params)``) and every random
choice depends only on the cube's shape, so replaying it on a constant cube marks the changed
values: the lost bands, the missing pixels, the striped or dead columns of each affected band,
the impulse pixels. Degradations that change every value (noise, blur, down-sampling, and
``complex``, whose noise covers every band) have no separate part: the whole-raster score is
already theirs, and :func:`degraded_part` returns None.

Scores, in the convention of ``evaluate_rasters`` (``quality.raster_convention``): the peak is
the reference's maximum over the scored pixels (or the data range given), both rasters are
divided by it and neither is clipped; pixels invalid in either raster and reference bands
without data are left out. On the changed values:

- PSNR: per affected band over that band's changed values, averaged over the bands;
- SSIM: per affected band over the whole band (its 7 × 7 windows need neighbours), averaged;
- SAM: over the pixels with at least one changed value, whole spectra;
- ERGAS: 100 · sqrt(mean_b (RMSE_b / μ_b)²) with RMSE_b and μ_b over band b's changed values.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from .errors import DampInputError
from .raster import RasterReader, open_raster

RECORD_KEY = "DAMP_DEGRADATION"
REPLAY_LEVEL = 0.5  # the constant cube a record is replayed on; every kind moves it


@dataclass(frozen=True)
class DegradedPart:
    """The values of a (bands, rows, cols) raster that a recorded degradation changed.

    kind: the degradation's name; mask: (bands, rows, cols) bool, True where a value changed.
    """

    kind: str
    mask: np.ndarray

    @property
    def bands(self) -> list[int]:
        """The 0-based bands with at least one changed value."""
        return [int(b) for b in np.flatnonzero(self.mask.any(axis=(1, 2)))]

    @property
    def pixels(self) -> np.ndarray:
        """(rows, cols) bool: the pixels with at least one changed value."""
        return self.mask.any(axis=0)

    @property
    def share(self) -> float:
        """The fraction of the raster's values that changed."""
        return float(self.mask.mean())


@dataclass(frozen=True)
class PartScores:
    """PSNR / SSIM / SAM / ERGAS of the degraded part, and what that part is.

    bands_scored: the affected bands that were scored (those with data in the reference);
    bands_with_data: the reference's bands with data; peak: what both rasters were divided by.
    """

    part: DegradedPart
    scores: dict[str, float]
    bands_scored: int
    bands_with_data: int
    peak: float

    def describe(self) -> str:
        """E.g. "stripes: 73 of 218 bands, 3.2 % of the values"."""
        return (f"{self.part.kind}: {self.bands_scored} of {self.bands_with_data} bands, "
                f"{100 * self.part.share:.2g} % of the values")

    def to_dict(self) -> dict:
        """JSON-ready: the four scores, then kind, bands (count scored) and share of the values."""
        return {**self.scores, "kind": self.part.kind, "bands": self.bands_scored, "share": self.part.share,
                "peak": self.peak}


def read_record(path: str | os.PathLike) -> dict | None:
    """The ``DAMP_DEGRADATION`` record stored in a raster's metadata, None if it has none (or a broken one)."""
    text = open_raster(path).metadata.get(RECORD_KEY)
    if not text:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "kind" in record else None


def degraded_part(record: dict, shape: tuple[int, int, int]) -> DegradedPart | None:
    """The values of a raster of ``shape`` that the degradation ``record`` changed.

    None when it changed every value (then there is no part to score apart), or when the record
    cannot belong to a raster of this shape (a band it names does not exist).
    """
    from .degrade import degrade

    bands, rows, cols = shape
    affected = [int(b) for b in record.get("bands", [])]
    if not affected or max(affected) >= bands or min(affected) < 0:
        return None
    if record.get("pixel_fraction") is None:  # every value of the affected bands changed
        if len(set(affected)) == bands:
            return None
        mask = np.zeros(shape, bool)
        mask[affected] = True
        return DegradedPart(record["kind"], mask)
    constant = np.full(shape, REPLAY_LEVEL, np.float32)
    try:
        replayed, _ = degrade(constant, record["kind"], seed=record.get("seed", 0), **record.get("params", {}))
    except DampInputError:
        return None
    mask = replayed != constant
    if mask.all() or not mask.any():
        return None
    return DegradedPart(record["kind"], mask)


def score_part(ref: np.ndarray, est: np.ndarray, part: DegradedPart, valid: np.ndarray,
               bands: np.ndarray | None = None) -> dict[str, float] | None:
    """Score ``est`` against ``ref`` ((C, H, W), divided by the peak) on the changed values of ``part``.

    ``valid`` (H, W) marks the pixels to use; ``bands`` (C,) bool the bands to use (all if None).
    Nothing is clipped. None when no changed value is valid.
    """
    from .quality import ergas, psnr, sam, ssim

    keep = np.ones(ref.shape[0], bool) if bands is None else np.asarray(bands, bool)
    changed = part.mask & valid[None] & keep[:, None, None]
    per_band = [b for b in range(ref.shape[0]) if changed[b].any()]
    if not per_band:
        return None

    def values(cube: np.ndarray, b: int) -> np.ndarray:
        return cube[b][changed[b]][None, :, None]  # one band's changed values as a (1, N, 1) cube

    psnrs = [psnr(values(ref, b), values(est, b)) for b in per_band]
    ergases = [ergas(values(ref, b), values(est, b)) for b in per_band]
    ergases = [e for e in ergases if math.isfinite(e)]
    pixels = changed.any(axis=0)
    return {
        "psnr": float(np.mean(psnrs)),
        "ssim": ssim(ref[per_band], est[per_band]),
        "sam": sam(ref[keep][:, pixels][:, :, None], est[keep][:, pixels][:, :, None]),
        "ergas": float(math.sqrt(np.mean(np.square(ergases)))) if ergases else float("nan"),
    }


def evaluate_degraded_part(reference: str | os.PathLike, test: str | os.PathLike, record: dict | None = None,
                           data_range: float | None = None) -> PartScores | None:
    """Scores of ``test`` against ``reference`` on the values the degradation changed.

    ``record`` defaults to the ``DAMP_DEGRADATION`` record of ``test`` (a degraded raster, or a
    restored one, which keeps its input's metadata); ``data_range`` is the peak, as in
    ``evaluate_rasters`` (default: the reference's maximum over the pixels valid in both, the peak
    of the whole-raster score). None when there is no record, or when the degradation changed
    every value (the whole-raster score of ``evaluate_rasters`` is then the score of the degraded
    part).
    """
    from .quality import check_data_range, reference_peak

    given = None if data_range is None else check_data_range(data_range)
    record = record if record is not None else read_record(test)
    if record is None:
        return None
    with RasterReader(reference, min_bands=3) as reader:
        ref, ref_valid = reader.read_all()
        shape = reader.info.shape
    part = degraded_part(record, shape)
    if part is None:
        return None
    with RasterReader(test) as reader:
        if reader.info.shape != shape:
            raise DampInputError(f"The rasters differ in shape: reference {shape} vs test {reader.info.shape} "
                                 "(bands, rows, cols); compare rasters on the same grid.")
        est, est_valid = reader.read_all()
    keep = ref_valid.any(axis=(1, 2))
    valid = (ref_valid & est_valid)[keep].all(axis=0)
    if not valid.any():
        raise DampInputError("The two rasters share no valid pixel; nothing to compare.")
    ref[:, ~valid] = 0.0
    est[:, ~valid] = 0.0
    peak = given if given is not None else reference_peak(ref[keep], valid)
    scores = score_part(ref.astype(np.float64) / peak, est.astype(np.float64) / peak, part, valid, bands=keep)
    if scores is None:
        return None
    scored = int((part.mask & valid[None] & keep[:, None, None]).any(axis=(1, 2)).sum())
    return PartScores(part, scores, scored, int(keep.sum()), peak)
