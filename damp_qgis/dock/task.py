"""The dock's background work: one ``damp_engine.inspect.inspect_raster`` call in a QgsTask."""
from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from qgis.core import Qgis, QgsMessageLog, QgsTask

from .layers import Window


@dataclass(frozen=True)
class InspectRequest:
    """What to inspect: a layer's file, whole (window None) or one pixel window, with which model."""

    layer_id: str
    layer_name: str
    path: str
    window: Window | None
    model: str | None  # a .safetensors file, or None for the default model
    device: str = "auto"


class InspectTask(QgsTask):
    """Inspects a raster in a worker thread; torch and the engine are imported there, not at start-up.

    After ``run``, exactly one of ``inspection`` (an ``Inspection``) and ``error`` (a message for
    the user) is set, or neither if the task was cancelled. ``on_done(task)`` is called on the
    main thread when the task ends, however it ends.

    A cancelled inspection ends as *complete*, not *terminated*: the dock cancels one whenever the
    user moves on to another layer, which is no failure, and QGIS announces a terminated task
    that ran a few seconds as "Task failed".
    """

    def __init__(self, request: InspectRequest, on_done: Callable[[InspectTask], None]) -> None:
        super().__init__(f"DAMP: inspecting {request.layer_name}", QgsTask.CanCancel)
        self.request = request
        self.inspection = None
        self.error: str | None = None
        self._on_done = on_done

    def run(self) -> bool:
        """Compute the inspection; True when done or cancelled, False when it failed."""
        try:
            from damp_engine import DampCancelled, DampInputError
            from damp_engine import inspect_raster
        except (ImportError, OSError) as exc:  # OSError: a torch wheel whose libraries fail to load
            from ..algorithms.base import TORCH_MISSING

            self.error = TORCH_MISSING.format(missing=str(exc))
            return False
        request = self.request
        try:
            self.inspection = inspect_raster(request.path, request.window, model=request.model,
                                             device=request.device, cancelled=self.isCanceled)
        except DampCancelled:
            return True  # asked to stop, and stopped: not a failure (inspection stays None)
        except DampInputError as exc:
            self.error = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 (a bug must not take QGIS down: report and log it)
            self.error = f"The inspection failed ({type(exc).__name__}: {exc}); details are in the DAMP log."
            QgsMessageLog.logMessage(traceback.format_exc(), "DAMP", Qgis.Critical)
            return False
        return True

    def finished(self, result: bool) -> None:  # noqa: ARG002 (QGIS API; the outcome is in the attributes)
        self._on_done(self)
