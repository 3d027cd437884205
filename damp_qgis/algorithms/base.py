"""What every DAMP algorithm shares: group, tags, icon, help page, parameter helpers, the torch
check, progress and cancel, and the translation of engine errors into ``QgsProcessingException``.

Subclasses declare their parameters in ``initAlgorithm`` (through :meth:`DampAlgorithm.add`, which
attaches the help text) and implement :meth:`DampAlgorithm.process`: translate parameters, call
``damp_engine``, report. Modules that import torch are imported inside ``process`` only, so that
listing the algorithms (QGIS start-up, ``qgis_process list``) never loads torch.

Every text a user reads is a literal passed to :func:`tr` where it is written (class constants
included), so that Qt's translation tools find them all; engine texts (metric names, error
messages) are shown as the engine words them, never passed through ``tr``.
"""
from __future__ import annotations

import html
import importlib
import os
from typing import Any, Callable

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputDefinition,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsRasterLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication, QVariant
from qgis.PyQt.QtGui import QIcon

from damp_engine import (DEFAULT_HALO, DEFAULT_TILE, MAX_HALO, MAX_TILE, MIN_HALO, MIN_TILE, DampCancelled,
                         DampInputError, one_line)

from ..outputs import OutputLayer, derived_name
from ..paths import icon_path


def tr(text: str) -> str:
    """``text`` (a string literal) in the user's language, in the translation context of DAMP's algorithms."""
    return QCoreApplication.translate("DampAlgorithm", text)


PAPER = ("Degradation-Aware Metric Prompting for Hyperspectral Image Restoration, ICML 2026, "
         "arXiv:2512.20251")
DEVICES = ("auto", "cpu", "cuda")
MODEL_FILTER = "DAMP model (*.safetensors)"
HANDLES_WELL = tr("Handles well: Gaussian and mixed noise (with stripes, dead lines or salt-and-pepper), "
                   "missing pixels and lost bands (give them as the gap mask and bad bands), and detail lost "
                   "to ×4 coarser pixels; mild blur and ×2 coarser pixels improve less, and motion blur, "
                   "which the model never saw in training, not at all.")
CPU_TIME = tr("Time: on a 2-core CPU about 10 s per megapixel of a 31-band raster and about 2.5 minutes per "
              "megapixel of a 224-band one (a 1000 × 1000 pixel EnMAP scene); a CUDA GPU is many times faster.")
# The toolbox groups: ids never change (saved models and scripts may name them), titles are translated.
GROUPS = {"restoration": tr("Restoration"), "analysis": tr("Analysis"), "simulation": tr("Simulation"),
          "training": tr("Training")}
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


def model_problem(path: str) -> str | None:
    """Why the MODEL file ``path`` cannot be a DAMP model (one sentence), or None if it may be one.

    Checked before the run, without torch: a missing file, a folder, and any file that is not
    .safetensors (pickled PyTorch files can run code when opened, so they are never loaded).
    The engine checks the weights and the model card when it loads the model.
    """
    name = os.path.basename(path.rstrip("/\\")) or path
    if os.path.isdir(path):
        return tr("DAMP model: {path} is a folder; give a DAMP .safetensors model file (with its .json model "
                  "card beside it), or leave the parameter empty for the bundled model.").format(path=path)
    if not os.path.isfile(path):
        return tr("DAMP model: No model file at {path}. Give the path of a DAMP .safetensors model, or leave "
                  "the parameter empty for the bundled model.").format(path=path)
    if not path.lower().endswith(".safetensors"):
        kind = (tr("a pickled PyTorch file, which can run code when opened and is never loaded")
                if path.lower().endswith(PICKLE_SUFFIXES) else tr("not a .safetensors file"))
        return tr("DAMP model: {name} is {kind}. DAMP loads only safetensors weights with their .json model "
                  "card (what 'damp train' and Fine-tune model write); convert the weights with "
                  "safetensors.torch.save_file, or leave the parameter empty for the bundled model.").format(
            name=name, kind=kind)
    return None


def text_enum(name: str, description: str, options: list[str], default: str) -> QgsProcessingParameterEnum:
    """An enum whose value is the option's text (e.g. DEVICE=cpu), not its position, so that
    qgis_process calls and saved models stay valid when options are added."""
    parameter = QgsProcessingParameterEnum(name, description, options=options, defaultValue=default)
    parameter.setUsesStaticStrings(True)
    return parameter


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """``parameter``, shown under *Advanced parameters* of the dialog."""
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


def device_words(device: str) -> str:
    """"cpu" → "the CPU", "cuda:0" → "the GPU (cuda:0)"."""
    return "the CPU" if device.startswith("cpu") else f"the GPU ({device})"


def torch_problem() -> str | None:
    """What to install when QGIS's Python cannot import torch or safetensors (one paragraph), else None."""
    missing = []
    for module in ("torch", "safetensors"):
        try:
            importlib.import_module(module)
        except (ImportError, OSError) as exc:  # OSError: a wheel whose shared libraries fail to load
            missing.append(f"{module} ({exc})")
    if not missing:
        return None
    return tr("DAMP needs PyTorch and safetensors, but the Python that QGIS runs cannot import {missing}. "
              "Install them into QGIS's Python with: pip install torch==2.13.0 safetensors "
              "(Linux: python3 -m pip install --user torch==2.13.0 safetensors; Windows: from the OSGeo4W "
              "Shell), then restart QGIS.").format(missing=" and ".join(missing))


class DampAlgorithm(QgsProcessingAlgorithm):
    """Base of the DAMP algorithms. Subclasses set GROUP_ID, HELP and TAGS and implement ``process``."""

    INPUT, OUTPUT = "INPUT", "OUTPUT"
    MODEL, TILE, HALO, DEVICE, TILE_PROMPTS = "MODEL", "TILE", "HALO", "DEVICE", "TILE_PROMPTS"

    GROUP_ID = ""  # a key of GROUPS
    HELP = ""      # what the algorithm does for the user, in plain words (translated)
    NOTES = ()     # further short paragraphs: what it handles well, how long it takes, ... (translated)
    TAGS = ""      # comma-separated search words of the toolbox (translated)

    def __init__(self) -> None:
        super().__init__()
        self._output_help: dict[str, str] = {}

    # --- identity and help ---------------------------------------------------------------
    def createInstance(self) -> "DampAlgorithm":  # noqa: N802 (QGIS API)
        return type(self)()

    def tr(self, text: str) -> str:
        """``text`` (a string literal) in the user's language: :func:`tr`."""
        return tr(text)

    def group(self) -> str:
        return GROUPS[self.GROUP_ID]

    def groupId(self) -> str:  # noqa: N802 (QGIS API)
        return self.GROUP_ID

    def tags(self) -> list[str]:
        return [tag.strip() for tag in self.TAGS.split(",") if tag.strip()]

    def icon(self) -> QIcon:
        return QIcon(icon_path(self.name()))

    def svgIconPath(self) -> str:  # noqa: N802 (QGIS API)
        return icon_path(self.name())

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        """HELP and NOTES, then every parameter and output with its help text, then the paper."""
        def entry(description: str, name: str, text: str) -> str:
            return f"<dt><b>{html.escape(description)}</b> (<code>{name}</code>)</dt><dd>{html.escape(text)}</dd>"

        parameters = [entry(p.description(), p.name(), p.help()) for p in self.parameterDefinitions()]
        outputs = [entry(o.description(), o.name(), self._output_help[o.name()])
                   for o in self.outputDefinitions() if o.name() in self._output_help]
        parts = [f"<p>{html.escape(text)}</p>" for text in (self.HELP, *self.NOTES)]
        parts.append(f"<h3>{self.tr('Parameters')}</h3><dl>{''.join(parameters)}</dl>")
        if outputs:
            parts.append(f"<h3>{self.tr('Other outputs')}</h3><dl>{''.join(outputs)}</dl>")
        parts.append(f"<p>{self.tr('Reference')}: {html.escape(PAPER)}</p>")
        return "".join(parts)

    # --- declaring parameters -------------------------------------------------------------
    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str) -> None:
        """Add a parameter with its (translated) help text, shown as tooltip and on the help page."""
        parameter.setHelp(help_text)
        self.addParameter(parameter)

    def add_output_with_help(self, output: QgsProcessingOutputDefinition, help_text: str) -> None:
        """Add a non-layer output (e.g. a number) with its (translated) help text for the help page."""
        self._output_help[output.name()] = help_text
        self.addOutput(output)

    def add_model(self, description: str | None = None) -> None:
        """The MODEL file parameter, titled ``description`` (translated; default: "DAMP model (empty: the
        bundled model)")."""
        title = description or self.tr("DAMP model (empty: the bundled model)")
        self.add(QgsProcessingParameterFile(self.MODEL, title, fileFilter=MODEL_FILTER, optional=True),
                 self.tr("A DAMP model: a .safetensors file with its .json model card beside it (same name). "
                         "Leave empty for the model bundled with the plugin."))

    def add_tile(self) -> None:
        self.add(advanced(QgsProcessingParameterNumber(self.TILE, self.tr("Tile size (pixels)"),
                                                       defaultValue=DEFAULT_TILE, minValue=MIN_TILE,
                                                       maxValue=MAX_TILE)),
                 self.tr("The raster is processed in square tiles of this side, so that rasters of any size fit "
                         "in memory. Smaller tiles need less (GPU) memory; larger ones run a little faster."))

    def add_halo(self) -> None:
        self.add(advanced(QgsProcessingParameterNumber(self.HALO, self.tr("Tile overlap (pixels)"),
                                                       defaultValue=DEFAULT_HALO, minValue=MIN_HALO,
                                                       maxValue=MAX_HALO)),
                 self.tr("Pixels of context read around every tile and cropped away afterwards, so that no seams "
                         "show between tiles."))

    def add_tile_prompts(self) -> None:
        self.add(advanced(QgsProcessingParameterBoolean(
            self.TILE_PROMPTS, self.tr("Adapt to each tile separately"), defaultValue=False)),
                 self.tr("Off (default): the whole raster is treated alike, so tiles join without seams. On: each "
                         "tile is treated by its own degradation, for scenes whose degradation changes across "
                         "them (e.g. noise in one part only)."))

    def add_device(self) -> None:
        self.add(advanced(text_enum(self.DEVICE, self.tr("Device"), list(DEVICES), DEVICES[0])),
                 self.tr("Where the network runs: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu or "
                         "cuda (fails when no GPU is visible)."))

    # --- reading parameters ---------------------------------------------------------------
    def not_a_raster(self, parameters: dict, name: str) -> str:
        """The message for a raster-layer parameter whose value is no raster (e.g. a vector file)."""
        return self.tr(
            "{label}: {value} is not a raster layer. Give a hyperspectral raster file (GeoTIFF, ENVI or "
            "VRT) with at least 3 bands.").format(label=self.parameterDefinition(name).description(),
                                                  value=parameters.get(name))

    def checkParameterValues(self, parameters: dict, context: QgsProcessingContext) -> tuple[bool, str]:  # noqa: N802
        """QGIS's own check, but a raster parameter given a vector or unreadable file, and a MODEL that
        cannot be a DAMP model (e.g. a pickled .pt file), say so plainly instead of "Incorrect
        parameter value"."""
        model = parameters.get(self.MODEL) if self.parameterDefinition(self.MODEL) is not None else None
        if model not in (None, ""):
            problem = model_problem(self.parameterAsFile(parameters, self.MODEL, context) or str(model))
            if problem:
                return False, problem
        for definition in self.parameterDefinitions():
            name = definition.name()
            if (definition.type() == "raster" and parameters.get(name) not in (None, "")
                    and self.parameterAsRasterLayer(parameters, name, context) is None):
                return False, self.not_a_raster(parameters, name)
            if definition.type() == "number" and parameters.get(name) not in (None, ""):
                problem = self.number_problem(definition, parameters.get(name))
                if problem:
                    return False, problem
        return super().checkParameterValues(parameters, context)

    def number_problem(self, definition, value) -> str | None:
        """Why ``value`` does not fit the number parameter ``definition`` (one sentence), or None."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return self.tr("{label}: {value!r} is not a number.").format(label=definition.description(), value=value)
        low, high = definition.minimum(), definition.maximum()
        if not low <= number <= high:
            return self.tr("{label}: {value:g} is outside the accepted range, {low:g} to {high:g}.").format(
                label=definition.description(), value=number, low=low, high=high)
        return None

    def input_raster(self, parameters: dict, name: str, context: QgsProcessingContext, min_bands: int = 3) -> str:
        """The file path of a raster-layer parameter, checked by :meth:`check_raster`."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.not_a_raster(parameters, name))
        return self.check_raster(layer, name, min_bands)

    def check_raster(self, layer, name: str, min_bands: int = 3) -> str:
        """The file path of ``layer`` (given for parameter ``name``) if GDAL reads it with enough bands."""
        label = self.parameterDefinition(name).description()
        if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
            raise QgsProcessingException(self.tr(
                "{label}: {layer} is not a valid raster layer. Give a hyperspectral raster file "
                "(GeoTIFF, ENVI or VRT) with at least 3 bands.").format(label=label, layer=layer.name()))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(self.tr(
                "{label}: {layer} is a '{provider}' layer; DAMP reads raster files through GDAL. Save "
                "the layer as a GeoTIFF first.").format(label=label, layer=layer.name(),
                                                         provider=layer.providerType()))
        from damp_engine import open_raster

        open_raster(layer.source(), min_bands=min_bands)
        return layer.source()

    def output_path(self, parameters: dict, name: str, context: QgsProcessingContext) -> str | None:
        """The path of a destination parameter, None for an optional output left empty."""
        return self.parameterAsOutputLayer(parameters, name, context) or None

    def model_path(self, parameters: dict, context: QgsProcessingContext) -> str | None:
        """The MODEL file, None for the bundled model."""
        return self.parameterAsFile(parameters, self.MODEL, context) or None

    def device(self, parameters: dict, context: QgsProcessingContext) -> str:
        return self.parameterAsEnumString(parameters, self.DEVICE, context)

    def output_name(self, parameters: dict, context: QgsProcessingContext, what: str, source: str | None = None) -> str:
        """The name of an output made from the raster parameter ``source`` (INPUT): "<its name> — <what>".

        In a model, an input that an earlier step wrote goes by the name that step gave it, so
        names chain: "scene — degraded (noise) — restored"."""
        layer = self.parameterAsRasterLayer(parameters, source or self.INPUT, context)
        if layer is None:
            return derived_name(self.tr("output"), what)
        return derived_name(OutputLayer.name_in_run(context, layer.source()) or layer.name(), what)

    def load_as(self, context: QgsProcessingContext, path: str | None, name: str) -> None:
        """If QGIS loads the output ``path`` after the run, call it ``name`` (rasters in true colour)."""
        OutputLayer.attach(context, path, name)

    @staticmethod
    def details_log(context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> Callable[[str], None]:
        """Where the engine's technical lines go (tiles, experts, scale factors): the log when it is
        verbose (the Modeler, ``qgis_process --verbose``), else nowhere; the run report keeps them."""
        if context.logLevel() >= QgsProcessingContext.Verbose:
            return feedback.pushInfo
        return lambda line: None

    def prompt_scope(self, parameters: dict, context: QgsProcessingContext) -> str:
        return "tile" if self.parameterAsBoolean(parameters, self.TILE_PROMPTS, context) else "scene"

    def write_table(self, parameters: dict, name: str, context: QgsProcessingContext,
                    rows: dict[str, Any] | list[dict[str, Any]]) -> str:
        """Write ``rows`` (one dict, or dicts with the same keys) as the records of a table without
        geometry (a feature sink); return its id. The first row's values set the field types."""
        rows = [rows] if isinstance(rows, dict) else rows
        fields = QgsFields()
        for key, value in rows[0].items():
            kind = {str: QVariant.String, int: QVariant.Int}.get(type(value), QVariant.Double)
            fields.append(QgsField(key, kind))
        sink, destination = self.parameterAsSink(parameters, name, context, fields, QgsWkbTypes.NoGeometry,
                                                 QgsCoordinateReferenceSystem())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, name))
        for row in rows:
            feature = QgsFeature(fields)
            feature.setAttributes(list(row.values()))
            sink.addFeature(feature, QgsFeatureSink.FastInsert)
        return destination

    @staticmethod
    def callbacks(feedback: QgsProcessingFeedback, start: float = 0.0, end: float = 100.0) -> dict[str, Callable]:
        """The engine's progress (fraction 0..1, shown from ``start`` to ``end`` percent) and cancel
        hooks, wired to the feedback object."""
        return {"progress": lambda fraction: feedback.setProgress(start + (end - start) * fraction),
                "cancelled": feedback.isCanceled}

    @staticmethod
    def advance(feedback: QgsProcessingFeedback, percent: float) -> None:
        """Report that the run has come ``percent`` of the way, and stop it here (DampCancelled,
        which ends the run as cancelled) when the user has cancelled: for algorithms whose engine
        calls work on a whole raster at once, between those calls."""
        feedback.setProgress(percent)
        if feedback.isCanceled():
            raise DampCancelled("cancelled")

    # --- running --------------------------------------------------------------------------
    def canExecute(self) -> tuple[bool, str]:  # noqa: N802 (QGIS API)
        """False, with what to install, when QGIS's Python lacks torch or safetensors: the toolbox
        then says so before the dialog opens."""
        problem = torch_problem()
        return problem is None, problem or ""

    def processAlgorithm(self, parameters: dict, context: QgsProcessingContext,  # noqa: N802 (QGIS API)
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Run :meth:`process`; every failure a user can fix becomes one QgsProcessingException sentence.

        Engine errors (bad input, damaged files, unwritable folders) carry their own sentence; an
        exhausted memory and an operating-system error are worded here. A cancel is no failure: the
        run ends with a warning and no outputs, as QGIS's own algorithms end. The engine has already
        removed every temporary file, and no output was moved into place. ``qgis_process`` and
        ``processing.run`` do not ask :meth:`canExecute`, so the torch check runs here too.
        """
        ok, problem = self.canExecute()
        if not ok:
            raise QgsProcessingException(problem)
        try:
            return self.process(parameters, context, feedback)
        except DampInputError as exc:
            raise QgsProcessingException(str(exc)) from None
        except DampCancelled:
            feedback.pushWarning(self.tr("Cancelled: no output was written."))
            return {}
        except MemoryError:
            raise QgsProcessingException(self.tr(
                "Not enough memory for this run: choose a smaller tile size, or crop the raster first. No "
                "output was written.")) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise QgsProcessingException(self.tr("{where}{problem}; no output was written.").format(
                where=where, problem=one_line(exc.strerror or exc))) from None

    def process(self, parameters: dict, context: QgsProcessingContext,
                feedback: QgsProcessingFeedback) -> dict[str, Any]:
        """Translate the parameters, call damp_engine, report; return the outputs."""
        raise NotImplementedError
