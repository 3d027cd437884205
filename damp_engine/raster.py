"""GDAL raster I/O: metadata, windowed reads with a halo, and atomic block-wise writers.

Everything the engine knows about files goes through this module. Reads return float32 cubes
(bands, rows, cols) with band scale/offset applied and a validity mask (nodata and NaN/Inf are
invalid). Writers create a hidden temporary file beside the destination and move it into place
only when the `with` block ends without an exception (or, in an `outputs.OutputGroup`, together
with the run's other outputs), so a failed or cancelled run leaves nothing.

Every GDAL call that touches a file runs inside `gdal_errors`, so a damaged, truncated or
unwritable file is a `DampInputError` that names the user's file, never a GDAL traceback.
`check_output_path` does the checks that must pass before any work starts.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from osgeo import gdal

from .errors import DampCancelled, DampInputError, one_line, read_error, write_error
from .outputs import check_writable_folder, commit_together, delete_file_set, remove_stale_files, temp_path

gdal.UseExceptions()

_UNIT_TO_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1000.0, "µm": 1000.0, "micrometer": 1000.0, "micrometers": 1000.0,
    "micrometre": 1000.0, "micrometres": 1000.0, "micron": 1000.0, "microns": 1000.0,
    "mm": 1.0e6, "millimeter": 1.0e6, "millimeters": 1.0e6,
}
RASTER_SUFFIXES = {".tif", ".tiff", ".bsq", ".bil", ".bip", ".img", ".dat", ".vrt"}  # files read as rasters
_GTIFF_EXT = {".tif", ".tiff"}
_ENVI_EXT = {".bsq": "BSQ", ".bil": "BIL", ".bip": "BIP", ".img": "BSQ", ".dat": "BSQ", ".envi": "BSQ"}
_NUMPY_TO_GDAL = {
    "uint8": gdal.GDT_Byte, "uint16": gdal.GDT_UInt16, "int16": gdal.GDT_Int16,
    "uint32": gdal.GDT_UInt32, "int32": gdal.GDT_Int32, "float32": gdal.GDT_Float32,
    "float64": gdal.GDT_Float64,
}
_GDAL_TO_NUMPY = {v: k for k, v in _NUMPY_TO_GDAL.items()}


@contextmanager
def gdal_errors(path: str | os.PathLike, action: str = "read", temp: str | os.PathLike | None = None):
    """Turn the GDAL errors (RuntimeError), OSError and MemoryError of the block into DampInputError.

    action: "read" (a damaged or truncated input) or "write" (an output; `temp` is the hidden
    file actually written, whose name is replaced by `path` in the message).
    """
    try:
        yield
    except (DampInputError, DampCancelled):
        raise
    except (RuntimeError, OSError, MemoryError) as exc:
        raise (read_error(path, exc) if action == "read" else write_error(path, exc, temp)) from None


@dataclass(frozen=True)
class RasterInfo:
    """What the engine needs to know about a raster, read once when it is opened."""

    path: str
    width: int
    height: int
    bands: int
    dtype: str
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    band_names: tuple[str, ...]
    wavelengths: tuple[float, ...] | None
    geotransform: tuple[float, ...]
    projection: str
    metadata: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.bands, self.height, self.width)

    @property
    def is_integer(self) -> bool:
        return np.issubdtype(np.dtype(self.dtype), np.integer)

    def rgb_bands(self) -> tuple[int, int, int]:
        """0-based band indices closest to 640/550/460 nm (true colour), or spread evenly."""
        if self.wavelengths:
            wl = np.asarray(self.wavelengths)
            if wl.min() <= 700 and wl.max() >= 450:
                return tuple(int(np.argmin(np.abs(wl - t))) for t in (640.0, 550.0, 460.0))
        n = self.bands
        return (int(round(0.75 * (n - 1))), int(round(0.5 * (n - 1))), int(round(0.25 * (n - 1))))


def _parse_wavelength_list(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]


def _to_nm(values: Sequence[float], units: str | None) -> tuple[float, ...]:
    """Normalise wavelengths to nanometres; without units, values below 100 are taken as µm."""
    key = (units or "").strip().lower()
    if key in _UNIT_TO_NM:
        factor = _UNIT_TO_NM[key]
    else:
        factor = 1000.0 if max(values) < 100 else 1.0
    return tuple(float(v) * factor for v in values)


def _read_wavelengths(ds: gdal.Dataset) -> tuple[float, ...] | None:
    """Wavelengths in nm from band items, the ENVI domain or the IMAGERY domain, in that order."""
    n = ds.RasterCount
    items = [ds.GetRasterBand(i + 1).GetMetadataItem("wavelength") for i in range(n)]
    if all(items):
        try:
            units = ds.GetRasterBand(1).GetMetadataItem("wavelength_units")
            return _to_nm([float(v) for v in items], units)
        except ValueError:
            pass
    envi = ds.GetMetadata("ENVI") or {}
    if "wavelength" in envi:
        values = _parse_wavelength_list(envi["wavelength"])
        if len(values) == n:
            return _to_nm(values, envi.get("wavelength_units"))
    imagery = [ds.GetRasterBand(i + 1).GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") for i in range(n)]
    if all(imagery):
        return _to_nm([float(v) for v in imagery], "um")
    return None


def _open_dataset(path: str | os.PathLike) -> gdal.Dataset:
    path = str(path)
    if not os.path.exists(path) and not path.startswith("/vsi"):
        raise DampInputError(f"Input raster not found: {path}. Check the path.")
    if os.path.isdir(path):
        raise DampInputError(f"{path} is a folder, not a raster; give a GeoTIFF, ENVI or VRT file.")
    try:
        ds = gdal.Open(path, gdal.GA_ReadOnly)
    except (RuntimeError, OSError) as exc:
        raise DampInputError(f"GDAL cannot open {path} as a raster ({one_line(exc)}). The file is damaged or "
                             "not a raster; give a GeoTIFF, ENVI or VRT file.") from None
    if ds is None or ds.RasterCount == 0:
        raise DampInputError(f"{path} holds no raster bands. Give a hyperspectral raster.")
    return ds


STREAMING_CACHE_MB = (64, 1024)  # the least and the most GDAL block cache a streaming run is given


def streaming_cache_bytes(path: str | os.PathLike, halo: int = 64) -> int:
    """The GDAL block cache a tiled run over `path` needs to read each block of the input only once:
    two rows of its blocks plus the rows that a tile's halo reaches back into (every band, the whole
    width), within ``STREAMING_CACHE_MB``. A 224-band 1000-pixel-wide Int16 raster in 256-pixel
    blocks needs about 300 MB; with GDAL's 64 MB its tiles re-read the blocks above them and reading
    took three times as long (a one-off timing, 2026-12-08). The least when `path` cannot be read
    (the run itself then says why)."""
    low, high = (mb * 1024 * 1024 for mb in STREAMING_CACHE_MB)
    try:
        ds = _open_dataset(path)
    except DampInputError:
        return low
    band = ds.GetRasterBand(1)
    block_w, block_h = band.GetBlockSize()
    row = -(-ds.RasterXSize // block_w) * block_w * ds.RasterCount * gdal.GetDataTypeSize(band.DataType) // 8
    return int(min(high, max(low, row * (2 * block_h + 2 * halo))))


def bound_gdal_cache(path: str | os.PathLike) -> None:
    """Size GDAL's block cache for a streaming run over `path` (`streaming_cache_bytes`) unless the
    user set GDAL_CACHEMAX: GDAL's default, 5 % of the memory, would fill with blocks that are
    never read again as the raster grows."""
    if "GDAL_CACHEMAX" not in os.environ:
        gdal.SetCacheMax(streaming_cache_bytes(path))


def info_from_dataset(ds: gdal.Dataset, path: str) -> RasterInfo:
    """Read the metadata of an open dataset into a RasterInfo (DampInputError if it is damaged)."""
    with gdal_errors(path):
        return _info_from_dataset(ds, path)


def _info_from_dataset(ds: gdal.Dataset, path: str) -> RasterInfo:
    b1 = ds.GetRasterBand(1)
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    dtype = _GDAL_TO_NUMPY.get(b1.DataType)
    if dtype is None:
        raise DampInputError(f"{path}: pixel type {gdal.GetDataTypeName(b1.DataType)} is not supported; "
                             "convert it to Int16, UInt16 or Float32 first.")
    return RasterInfo(
        path=path,
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        bands=ds.RasterCount,
        dtype=dtype,
        nodata=b1.GetNoDataValue(),
        scales=tuple(b.GetScale() or 1.0 for b in bands),
        offsets=tuple(b.GetOffset() or 0.0 for b in bands),
        band_names=tuple(b.GetDescription() or f"band {i + 1}" for i, b in enumerate(bands)),
        wavelengths=_read_wavelengths(ds),
        geotransform=tuple(ds.GetGeoTransform(can_return_null=True) or (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
        projection=ds.GetProjection() or "",
        metadata=dict(ds.GetMetadata() or {}),
    )


def open_raster(path: str | os.PathLike, min_bands: int = 1) -> RasterInfo:
    """Open a raster read-only and return its metadata; fewer than `min_bands` bands is an error."""
    ds = _open_dataset(path)
    try:
        info = info_from_dataset(ds, str(path))
    finally:
        ds = None
    if info.bands < min_bands:
        raise DampInputError(f"{path} has {info.bands} band(s); at least {min_bands} are needed "
                             "(the spectral metrics use second differences along the spectrum).")
    return info


class RasterReader:
    """A raster opened read-only for many window reads (keeps one GDAL dataset open)."""

    def __init__(self, path: str | os.PathLike, min_bands: int = 1):
        self.info = open_raster(path, min_bands)
        self._ds = _open_dataset(path)
        self._scales = np.asarray(self.info.scales, np.float32)[:, None, None]
        self._offsets = np.asarray(self.info.offsets, np.float32)[:, None, None]
        self._scaled = bool(np.any(self._scales != 1) or np.any(self._offsets != 0))

    def __enter__(self) -> "RasterReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._ds = None

    def read(self, x0: int, y0: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Read a window of the raster (the tile loop's halo is part of the window it asks for).

        Returns (data, valid): float32 (bands, height, width) in physical units, invalid samples
        set to 0, and a bool array of the same shape, False where nodata/NaN/Inf.
        """
        info = self.info
        with gdal_errors(info.path):
            raw = self._ds.ReadAsArray(x0, y0, width, height)
            if raw is None:
                raise RuntimeError(gdal.GetLastErrorMsg() or "GDAL returned no data")
            raw = raw.reshape(info.bands, height, width)
        valid = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
        if info.nodata is not None and not np.isnan(info.nodata):
            valid &= raw != np.asarray(info.nodata).astype(raw.dtype)
        data = raw.astype(np.float32)
        if self._scaled:  # in place: a 224-band tile is a hundred megabytes
            data *= self._scales
            data += self._offsets
        np.copyto(data, np.float32(0.0), where=~valid)
        return data, valid

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """Read the whole raster (for small rasters: tests, evaluation)."""
        return self.read(0, 0, self.info.width, self.info.height)

    def read_band(self, index: int) -> np.ndarray:
        """Read one whole band (0-based) in physical units, NaN where invalid."""
        with gdal_errors(self.info.path):
            raw = self._ds.GetRasterBand(index + 1).ReadAsArray().astype(np.float32)
        bad = ~np.isfinite(raw)
        if self.info.nodata is not None and not np.isnan(self.info.nodata):
            bad |= raw == np.float32(self.info.nodata)
        raw = raw * self.info.scales[index] + self.info.offsets[index]
        raw[bad] = np.nan
        return raw


def driver_for(path: str | os.PathLike, dtype: str = "float32") -> tuple[str, list[str]]:
    """GDAL driver and creation options for an output path, from its extension (and, for the
    GeoTIFF compression's predictor, the data type written)."""
    ext = Path(path).suffix.lower()
    if ext in _GTIFF_EXT:
        # ZSTD at its fastest level after the predictor that suits the type (differences of
        # neighbours: 2 for integers, 3 for floats): on a 224 x 1000 x 1000 restored raster it
        # wrote Int16 in 3.5 s to 278 MB and float32 in 3.0 s to 505 MB, where DEFLATE level 1
        # took 4.7 s to 377 MB and 4.1 s to 519 MB (two cores, 2026-12-07, a one-off comparison).
        # GDAL (QGIS, rasterio) has read ZSTD since 2.3.
        predictor = "3" if np.issubdtype(np.dtype(dtype), np.floating) else "2"
        return "GTiff", ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=ZSTD", "ZSTD_LEVEL=1",
                         f"PREDICTOR={predictor}", "NUM_THREADS=ALL_CPUS", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER"]
    if ext in _ENVI_EXT:
        return "ENVI", [f"INTERLEAVE={_ENVI_EXT[ext]}"]
    raise DampInputError(f"Cannot write '{ext or 'no extension'}' files: name the output .tif (GeoTIFF) "
                         "or .bsq/.bil/.bip (ENVI).")


def check_output_path(output: str | os.PathLike, *inputs: str | os.PathLike | None) -> Path:
    """The resolved output raster path, checked before any work starts.

    Refused (DampInputError): the path of an input, a folder, a file that exists and is not a
    raster (only rasters are replaced), a missing folder, a folder that cannot be written to,
    an extension no raster driver writes. Stale temporary files of dead runs in the folder are
    removed (`outputs.remove_stale_files`).
    """
    out = Path(output).expanduser().resolve()
    for src in inputs:
        if src is not None and Path(src).expanduser().resolve() == out:
            raise DampInputError(f"The output {output} is the input file; choose another output path "
                                 "(the input is never overwritten).")
    if out.is_dir():
        raise DampInputError(f"The output {output} is a folder; give a raster file name in it, "
                             f"e.g. {out / 'restored.tif'}.")
    if not out.parent.is_dir():
        raise DampInputError(f"The output folder {out.parent} does not exist; create it first.")
    driver_for(out)
    if os.path.lexists(out) and not is_raster_file(out):
        raise DampInputError(f"The output {output} already exists and is not a raster; DAMP replaces only "
                             "rasters, so delete or rename that file, or choose another output name.")
    check_writable_folder(out.parent, output)
    remove_stale_files(out.parent)
    return out


def is_raster_file(path: str | os.PathLike) -> bool:
    """True if `path` is a regular file that a GDAL raster driver recognises (damaged or not)."""
    if not os.path.isfile(path):
        return False
    try:
        return gdal.IdentifyDriverEx(str(path), gdal.OF_RASTER) is not None
    except RuntimeError:
        return False


class RasterWriter:
    """Write a raster block by block into a hidden temporary file, moved into place on success.

    Use as a context manager: an exception inside the block (including a cancel) deletes the
    temporary file and leaves any existing destination untouched. Staged in an
    `outputs.OutputGroup` instead, it is moved into place together with the run's other outputs.
    Every GDAL error is a DampInputError that names the destination, not the temporary file.
    """

    def __init__(self, path: str | os.PathLike, like: RasterInfo, *, bands: int | None = None,
                 dtype: str = "float32", width: int | None = None, height: int | None = None,
                 geotransform: Sequence[float] | None = None, nodata: float | None = None,
                 band_names: Sequence[str] | None = None, wavelengths: Sequence[float] | None = None,
                 scales: Sequence[float] | None = None, offsets: Sequence[float] | None = None,
                 metadata: dict | None = None):
        self.path = Path(path).expanduser().resolve()
        driver_name, options = driver_for(self.path, dtype)
        self.bands = bands or like.bands
        self.width, self.height = width or like.width, height or like.height
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        self.temp = temp_path(self.path)
        self._driver = gdal.GetDriverByName(driver_name)
        self._ds = None
        try:
            with self._errors():
                self._ds = self._driver.Create(str(self.temp), self.width, self.height, self.bands,
                                               _NUMPY_TO_GDAL[self.dtype.name], options)
                self._ds.SetGeoTransform(tuple(geotransform or like.geotransform))
                if like.projection:
                    self._ds.SetProjection(like.projection)
                if metadata:
                    self._ds.SetMetadata({str(k): str(v) for k, v in metadata.items()})
                names = list(band_names or (like.band_names if self.bands == like.bands else []))
                wl = list(wavelengths or (like.wavelengths or [] if self.bands == like.bands else []))
                self._set_band_metadata(names, wl, scales, offsets)
                if driver_name == "ENVI" and wl:
                    self._ds.SetMetadataItem("wavelength", "{" + ", ".join(f"{v:.3f}" for v in wl) + "}", "ENVI")
                    self._ds.SetMetadataItem("wavelength_units", "Nanometers", "ENVI")
        except BaseException:
            self.discard()
            raise

    def _errors(self):
        return gdal_errors(self.path, "write", temp=self.temp)

    def _set_band_metadata(self, names, wavelengths, scales, offsets) -> None:
        for i in range(self.bands):
            band = self._ds.GetRasterBand(i + 1)
            if i < len(names):
                band.SetDescription(names[i])
            if i < len(wavelengths):
                band.SetMetadataItem("wavelength", f"{wavelengths[i]:.3f}")
                band.SetMetadataItem("wavelength_units", "nm")
            if self.nodata is not None:
                band.SetNoDataValue(float(self.nodata))
            if scales is not None and scales[i] != 1.0:
                band.SetScale(float(scales[i]))
            if offsets is not None and offsets[i] != 0.0:
                band.SetOffset(float(offsets[i]))

    def __enter__(self) -> "RasterWriter":
        return self

    def write(self, array: np.ndarray, x0: int, y0: int) -> None:
        """Write a (bands, h, w) block at column x0, row y0 (already in the output's units and type)."""
        block = np.ascontiguousarray(array, dtype=self.dtype)
        with self._errors():
            for i in range(self.bands):
                self._ds.GetRasterBand(i + 1).WriteArray(block[i], x0, y0)

    def finish(self) -> None:
        """Flush and close the temporary file (DampInputError if that fails, e.g. on a full disk)."""
        if self._ds is None:
            return
        with self._errors():
            self._ds.FlushCache()
            self._ds = None

    def discard(self) -> None:
        """Drop the temporary file and its side-cars; the destination is not touched. Never raises."""
        self._ds = None
        try:
            delete_file_set(self.temp)
        except OSError:
            pass

    def commit(self) -> Path:
        """Close the file and move it (with its side-car files) onto the destination."""
        commit_together([self])
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
