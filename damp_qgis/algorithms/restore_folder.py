"""damp:restore_folder — restore every raster of a folder on a Dask cluster (damp restore-batch)."""
from __future__ import annotations

import importlib
import multiprocessing
import sys
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from damp_engine import DampCancelled, parse_bands

from .base import DampAlgorithm, advanced, tr


def dask_problem() -> str | None:
    """What to install when QGIS's Python cannot import Dask distributed (one paragraph), else None."""
    try:
        importlib.import_module("distributed")
    except ImportError as exc:
        return tr("Restoring a folder needs Dask distributed, but the Python that QGIS runs cannot import it "
                  "({missing}). Install it into QGIS's Python with: pip install 'dask[distributed]' tqdm (Linux: "
                  "python3 -m pip install --user 'dask[distributed]' tqdm; Windows: from the OSGeo4W Shell), then "
                  "restart QGIS.").format(missing=exc)
    return None


def use_python_for_workers() -> None:
    """Start local Dask workers with the Python that runs QGIS, not with ``sys.executable``.

    Worker processes are started like ``sys.executable``, which inside QGIS and qgis_process is
    the QGIS program (Windows, macOS) or whatever ``python3`` comes first on PATH (Linux), not
    necessarily the interpreter QGIS embeds; the one in ``sys.exec_prefix`` is named instead.
    """
    prefix = Path(sys.exec_prefix).resolve()
    if prefix in Path(sys.executable).resolve().parents:
        return
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (prefix / "bin" / f"python{version}", prefix / "bin" / "python3", prefix / "python.exe",
                      prefix / "python3.exe"):
        if candidate.is_file():
            multiprocessing.set_executable(str(candidate))
            return


class RestoreFolderAlgorithm(DampAlgorithm):
    """Restore a folder of hyperspectral rasters, one Dask task per raster, with a manifest."""

    WORKERS, SCHEDULER, RETRIES, BAD_BANDS = "WORKERS", "SCHEDULER", "RETRIES", "BAD_BANDS"
    MANIFEST, RESTORED, SKIPPED, FAILED = "MANIFEST", "RESTORED", "SKIPPED", "FAILED"

    GROUP_ID = "restoration"
    TAGS = tr("hyperspectral,restoration,batch,folder,archive,Dask,cluster,manifest,DAMP")
    HELP = tr("Restores every raster of a folder (GeoTIFF, ENVI or VRT) with one DAMP model, as "
              "'Restore hyperspectral raster' restores each, on several worker processes (a local Dask "
              "cluster) or on a running Dask cluster. Each restored raster takes its input's file name in "
              "the output folder and appears only when complete. A manifest (manifest.jsonl in the output "
              "folder) records every raster's state, checksums, timings and degradation prompt, so running "
              "the algorithm again restores only what is missing or failed. A raster that fails is tried "
              "again, then reported, while the others go on; the algorithm fails at the end, naming them.")
    # the numbers it outputs: (key, title, help text)
    COUNTS = ((RESTORED, tr("Rasters restored by this run"), tr("The number of rasters restored by this run.")),
              (SKIPPED, tr("Rasters already complete, kept"), tr("The number of rasters already complete, kept.")),
              (FAILED, tr("Rasters that failed after their retries"),
               tr("The number of rasters that failed after their retries.")))

    def name(self) -> str:
        return "restore_folder"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Restore a folder of rasters")

    def initAlgorithm(self, config: dict | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterFile(self.INPUT, self.tr("Folder of degraded rasters"),
                                            behavior=QgsProcessingParameterFile.Folder),
                 self.tr("The folder whose rasters (.tif, .bsq, .bil, .bip, .img, .dat, .vrt; not its sub-folders) "
                         "are restored."))
        self.add_model()
        self.add_tile()
        self.add_halo()
        self.add_tile_prompts()
        self.add_device()
        self.add(QgsProcessingParameterString(self.BAD_BANDS, self.tr("Bad bands"), optional=True),
                 self.tr("Optional 1-based numbers of bands that are lost or unusable in every raster and are "
                         "rebuilt from the others, e.g. 1,2,130-135."))
        self.add(QgsProcessingParameterNumber(self.WORKERS, self.tr("Worker processes (0: one per CPU core)"),
                                              defaultValue=0, minValue=0, maxValue=256),
                 self.tr("How many rasters are restored at once, each by its own process with one CPU thread. "
                         "0 starts one per CPU core (never more than there are rasters to restore)."))
        self.add(advanced(QgsProcessingParameterString(self.SCHEDULER, self.tr("Dask scheduler address"),
                                                       optional=True)),
                 self.tr("Optional address of a running Dask scheduler (e.g. tcp://node1:8786) whose workers "
                         "restore the rasters instead of local processes; they must reach the same files."))
        self.add(advanced(QgsProcessingParameterNumber(self.RETRIES, self.tr("Retries of a failed raster"),
                                                       defaultValue=2, minValue=0, maxValue=10)),
                 self.tr("How many more times a raster that fails (unreadable file, worker stopped) is tried "
                         "before it is reported."))
        self.add(QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Folder of restored rasters")),
                 self.tr("Where the restored rasters and the manifest are written (created if missing). Rasters "
                         "already restored there with the same settings are kept and not restored again."))
        self.add_output_with_help(QgsProcessingOutputFile(self.MANIFEST, self.tr("Manifest")),
                                  self.tr("manifest.jsonl in the output folder: one JSON record per raster and "
                                          "attempt."))
        for key, title, help_text in self.COUNTS:
            self.add_output_with_help(QgsProcessingOutputNumber(key, title), help_text)

    def canExecute(self) -> tuple[bool, str]:  # noqa: N802 (QGIS API)
        """As every DAMP algorithm (torch), and Dask distributed too."""
        ok, problem = super().canExecute()
        if not ok:
            return ok, problem
        problem = dask_problem()
        return problem is None, problem or ""

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        from damp_engine import restore_batch

        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None
        if scheduler is None:
            use_python_for_workers()

        def on_scene(result, done: int, total: int) -> None:
            text = f"{done}/{total} {result.state}: {result.scene}"
            if result.error:
                feedback.reportError(f"{text}: {result.error}")
            else:
                feedback.pushInfo(text + (f" ({result.seconds:.1f} s)" if result.seconds is not None else ""))

        try:
            report = restore_batch(
                [self.parameterAsFile(parameters, self.INPUT, context)],
                self.parameterAsString(parameters, self.OUTPUT, context),
                workers=self.parameterAsInt(parameters, self.WORKERS, context) or None, scheduler=scheduler,
                retries=self.parameterAsInt(parameters, self.RETRIES, context),
                model=self.model_path(parameters, context),
                tile=self.parameterAsInt(parameters, self.TILE, context),
                halo=self.parameterAsInt(parameters, self.HALO, context),
                device=self.device(parameters, context), prompt_scope=self.prompt_scope(parameters, context),
                bad_bands=parse_bands(self.parameterAsString(parameters, self.BAD_BANDS, context)),
                on_scene=on_scene, log=feedback.pushInfo, **self.callbacks(feedback))
        except DampCancelled as exc:  # a cancel, not a failure; the finished rasters stay: say so
            feedback.pushWarning(str(exc))
            return {self.OUTPUT: self.parameterAsString(parameters, self.OUTPUT, context)}
        feedback.pushInfo(report.summary())
        if report.failed:
            raise QgsProcessingException("; ".join(report.failure_lines()))
        return {self.OUTPUT: str(report.out_dir), self.MANIFEST: str(report.manifest),
                self.RESTORED: report.count("done"), self.SKIPPED: report.count("skipped"),
                self.FAILED: len(report.failed)}
