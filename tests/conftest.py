"""Shared fixtures: paths to the team's real cubes and small synthetic rasters written with GDAL."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hsi"
SAMPLE = ROOT / "resources" / "sample" / "enmap_potsdam_sample.tif"


def write_raster(path: Path, cube: np.ndarray, *, nodata=None, wavelengths=None, units="nm",
                 geotransform=(500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0), epsg=32633,
                 driver="GTiff", scale=None) -> Path:
    """Write a (bands, rows, cols) cube as a georeferenced raster for a test."""
    from osgeo import osr

    dtype = {"float32": gdal.GDT_Float32, "uint16": gdal.GDT_UInt16, "int16": gdal.GDT_Int16,
             "float64": gdal.GDT_Float64, "uint8": gdal.GDT_Byte}[cube.dtype.name]
    ds = gdal.GetDriverByName(driver).Create(str(path), cube.shape[2], cube.shape[1], cube.shape[0], dtype)
    ds.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(cube.shape[0]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(cube[i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if scale is not None:
            band.SetScale(scale)
        if wavelengths is not None:
            band.SetMetadataItem("wavelength", str(wavelengths[i]))
            band.SetMetadataItem("wavelength_units", units)
    ds = None
    return path


def smooth_cube(bands: int = 31, rows: int = 48, cols: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth, spectrally correlated float32 cube in about [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    spectra = np.linspace(0, 1, bands)[:, None, None]
    cube = 0.5 + 0.2 * np.sin(6 * x + 3 * spectra) * np.cos(4 * y) + 0.1 * spectra
    return (cube + 0.01 * rng.standard_normal(cube.shape)).astype(np.float32)


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def sample_raster() -> Path:
    return SAMPLE


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Test tensors are small: one thread beats two that contend with other work on a shared CPU."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _module_needs_qgis(module) -> bool:
    """True for a test module that imports QGIS, the plugin or the qgis_process helpers at its top."""
    for value in vars(module).values():
        name = value.__name__ if isinstance(value, type(os)) else getattr(value, "__module__", None)
        if isinstance(name, str) and name.split(".")[0] in ("qgis", "damp_qgis", "plugin_support"):
            return True
    return False


def _requests_qgis_app(item) -> bool:
    """True when the test or one of the project's fixtures asks for `qgis_app` by name (pytest-qgis
    starts it for every test, autouse, so `item.fixturenames` always holds it)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    if "qgis_app" in info.argnames:
        return True
    return any("qgis_app" in definition.argnames  # the project's fixtures (plugins' have no baseid)
               for definitions in info.name2fixturedefs.values() for definition in definitions
               if getattr(definition, "baseid", ""))


def pytest_collection_modifyitems(config, items):
    """Every test that needs QGIS carries the `qgis` marker, so that `-m "not qgis"` runs the
    engine's tests alone: the tests of a module that imports QGIS, the plugin or the
    qgis_process helpers, and the tests that (through a fixture) ask for `qgis_app`."""
    for item in items:
        module = getattr(item, "module", None)
        if (module is not None and _module_needs_qgis(module)) or _requests_qgis_app(item):
            item.add_marker(pytest.mark.qgis)


@pytest.fixture(scope="module")
def processing(qgis_app):
    """processing.run with the DAMP provider registered the way QGIS does it (classFactory + initProcessing)."""
    import processing as qgis_processing  # pytest-qgis puts QGIS's python/plugins on sys.path
    from processing.core.Processing import Processing

    import damp_qgis

    Processing.initialize()
    plugin = damp_qgis.classFactory(None)
    plugin.initProcessing()
    yield qgis_processing
    plugin.unload()
