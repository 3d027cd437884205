"""What the tests share besides fixtures: where the data are, small rasters written with GDAL, a
seeded tiny model file, and the QGIS helpers (qgis_process runs, a stand-in for QgisInterface, a
feedback that records, an event loop that waits).

Nothing here imports QGIS at import time: the engine's tests (``pytest -m "not qgis"``) import this
module too. The names in ``QGIS_HELPERS`` need QGIS; a test module that uses one carries the
``qgis`` marker (tests/test_markers.py checks it)."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal, osr

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample" / "enmap_potsdam_sample.tif"
# The team's real cubes: ../shared/data/hsi beside the checkout (shared/ inside a copy of the work tree).
SHARED_DATA = next((root / "shared" / "data" / "hsi" for root in (ROOT, ROOT.parent)
                    if (root / "shared" / "data" / "hsi").is_dir()), ROOT.parent / "shared" / "data" / "hsi")
QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's /usr/bin/qgis_process wrapper fails on 3.22
QGIS_HELPERS = frozenset({"QGIS_PROCESS", "qgis_env", "qgis_process", "run_json", "linked_plugin_env", "wait_for",
                          "FakeIface", "RecordingFeedback"})

# --- rasters and models ------------------------------------------------------------------------


def write_raster(path: Path, cube: np.ndarray, *, nodata=None, wavelengths=None, units="nm",
                 geotransform=(500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0), epsg=32633,
                 driver="GTiff", scale=None) -> Path:
    """Write a (bands, rows, cols) cube as a georeferenced raster for a test."""
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


def read_window(path: Path, x: int | None = None, y: int | None = None, width: int | None = None,
                height: int | None = None) -> np.ndarray:
    """The stored values of a raster window (the whole raster without one), (bands, rows, cols)."""
    dataset = gdal.Open(str(path))
    assert dataset is not None, f"cannot open {path}"
    if x is None:
        return dataset.ReadAsArray()
    return dataset.ReadAsArray(x, y, width, height)


def smooth_cube(bands: int = 31, rows: int = 48, cols: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth, spectrally correlated float32 cube in about [0.1, 0.9]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    spectra = np.linspace(0, 1, bands)[:, None, None]
    cube = 0.5 + 0.2 * np.sin(6 * x + 3 * spectra) * np.cos(4 * y) + 0.1 * spectra
    return (cube + 0.01 * rng.standard_normal(cube.shape)).astype(np.float32)


def tiny_model_file(path: Path, **card) -> Path:
    """A random-init tiny DAMP model (seed 0) saved at ``path`` with ``card`` as its metadata: the
    numbers are not good restorations, the plumbing is real."""
    from damp_engine.checkpoint import save_checkpoint
    from damp_engine.model import DAMP, get_preset

    torch.manual_seed(0)
    return save_checkpoint(DAMP(get_preset("tiny")), path, card)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- qgis_process, QGIS's command line ---------------------------------------------------------


def qgis_env(home: Path, **extra: str) -> dict[str, str]:
    """os.environ for a qgis_process run: a throwaway HOME, offscreen Qt, torch from the venv."""
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    for inherited in ("DAMP_MODEL", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH"):  # the last two: pytest-qgis's
        env.pop(inherited, None)
    return {**env, **extra}


def linked_plugin_env(base: Path, **extra: str) -> dict[str, str]:
    """The environment of a qgis_process run with the plugin linked under ``base`` as `make
    install-plugin` links it, found through QGIS_PLUGINPATH and enabled in a fresh profile."""
    plugins = base / "plugins"
    subprocess.run(["python3", str(ROOT / "scripts" / "package_plugin.py"), "link", str(plugins)], check=True,
                   capture_output=True)
    settings = base / "home" / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text("[PythonPlugins]\ndamp_qgis=true\n")
    return qgis_env(base / "home", QGIS_PLUGINPATH=str(plugins), **extra)


def qgis_process(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def run_json(env: dict, algorithm: str, cwd: Path | None = None, **parameters) -> dict:
    """`qgis_process.bin --json run ALGORITHM -- KEY=VALUE ...`, parsed; fails the test on a non-zero exit."""
    done = qgis_process(env, "--json", "run", algorithm, "--", *(f"{k}={v}" for k, v in parameters.items()), cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


# --- QGIS in process -----------------------------------------------------------------------------


def wait_for(condition, timeout: float = 60.0) -> None:
    """Process Qt events until ``condition()`` holds; fail after ``timeout`` seconds."""
    from qgis.core import QgsApplication
    from qgis.PyQt.QtCore import QEventLoop, QThread

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the dock did not get there in time"
        QgsApplication.processEvents(QEventLoop.AllEvents, 20)
        QThread.msleep(5)


@functools.cache
def _qgis_classes() -> dict[str, type]:
    """The helpers that subclass QGIS classes, defined on first use (see ``__getattr__``)."""
    from qgis.core import QgsMapLayer, QgsProcessingFeedback
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtCore import QObject, pyqtSignal

    class FakeIface(QObject):
        """The part of QgisInterface the dock uses: the active layer, its change signal and the canvas."""

        currentLayerChanged = pyqtSignal("QgsMapLayer*")  # noqa: N815 (as QgisInterface declares it)

        def __init__(self, canvas: QgsMapCanvas) -> None:
            super().__init__()
            self.canvas = canvas
            self.layer: QgsMapLayer | None = None

        def mapCanvas(self) -> QgsMapCanvas:  # noqa: N802 (QGIS API)
            return self.canvas

        def activeLayer(self) -> QgsMapLayer | None:  # noqa: N802 (QGIS API)
            return self.layer

        def setActiveLayer(self, layer: QgsMapLayer | None) -> None:  # noqa: N802 (QGIS API)
            self.layer = layer
            self.currentLayerChanged.emit(layer)

    class RecordingFeedback(QgsProcessingFeedback):
        """Keeps the progress, warnings and errors an algorithm reports; with ``cancel_after``, asks
        to cancel at the first progress above that many percent (0: as soon as any work is done)."""

        def __init__(self, cancel_after: float | None = None) -> None:
            super().__init__()
            self.cancel_after = cancel_after
            self.progress: list[float] = []
            self.warnings: list[str] = []
            self.errors: list[str] = []

        def setProgress(self, progress: float) -> None:  # noqa: N802 (QGIS API)
            super().setProgress(progress)
            self.progress.append(progress)
            if self.cancel_after is not None and progress > self.cancel_after:
                self.cancel()

        def pushWarning(self, warning: str) -> None:  # noqa: N802 (QGIS API)
            self.warnings.append(warning)

        def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803 (QGIS API)
            self.errors.append(error)

    return {"FakeIface": FakeIface, "RecordingFeedback": RecordingFeedback}


def __getattr__(name: str) -> type:
    """``from helpers import FakeIface`` (or RecordingFeedback) defines the QGIS subclasses then, so
    that importing this module never imports QGIS."""
    if name in ("FakeIface", "RecordingFeedback"):
        return _qgis_classes()[name]
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")
