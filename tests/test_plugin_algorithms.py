"""The DAMP Processing algorithms, run in-process through processing.run on small real rasters:
outputs keep the georeferencing and carry the engine's numbers, cancel leaves nothing, bad input
gives a QgsProcessingException that says what to do, and the plugin loads without torch."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback,
                       QgsProject, QgsRasterLayer)
from qgis.gui import QgsMapCanvas
from qgis.PyQt.QtCore import QObject, Qt, pyqtSignal
from qgis.PyQt.QtGui import QFontMetrics
from qgis.PyQt.QtWidgets import QApplication

import damp_qgis
from damp_qgis.algorithms.restore import parse_bands
from damp_engine.model import DAMP, get_preset
from damp_engine.prompt import METRIC_NAMES
from damp_engine.raster import open_raster
from damp_engine.degradation_scores import evaluate_degraded_part
from damp_engine.scene import evaluate_rasters, prompt_raster
from helpers import ROOT, SAMPLE, RecordingFeedback, smooth_cube, tiny_model_file, write_raster

pytestmark = pytest.mark.qgis

ALGORITHMS = {"damp:restore", "damp:upscale", "damp:prompt", "damp:simulate", "damp:evaluate", "damp:routing",
              "damp:finetune"}
WORKFLOW = "damp:simulate_restore_evaluate"
TOOLBOX_TEXT_PX = 270  # what the toolbox shows of a name at its default width, in the offscreen 12 pt font
BANDS, SIDE = 31, 40
WAVELENGTHS = np.linspace(400.0, 700.0, BANDS)
GEOTRANSFORM = (500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("plugin")


@pytest.fixture(scope="module")
def clean(folder) -> Path:
    """31 bands x 40 x 40, 400-700 nm, UTM 33N."""
    return write_raster(folder / "clean.tif", smooth_cube(BANDS, SIDE, SIDE), wavelengths=WAVELENGTHS,
                        geotransform=GEOTRANSFORM)


@pytest.fixture(scope="module")
def noisy(folder, clean) -> Path:
    rng = np.random.default_rng(1)
    cube = smooth_cube(BANDS, SIDE, SIDE) + rng.normal(0, 0.1, (BANDS, SIDE, SIDE)).astype(np.float32)
    return write_raster(folder / "noisy.tif", cube, wavelengths=WAVELENGTHS, geotransform=GEOTRANSFORM)


@pytest.fixture(scope="module")
def model(folder) -> Path:
    return tiny_model_file(folder / "tiny.safetensors", name="plugin test")


def read(path) -> tuple[np.ndarray, tuple, str]:
    """(cube, geotransform, projection) of a raster; the dataset is closed before returning."""
    ds = gdal.Open(str(path))
    try:
        return ds.ReadAsArray(), ds.GetGeoTransform(), ds.GetProjection()
    finally:
        ds = None


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


class LogFeedback(QgsProcessingFeedback):
    """Keeps every line an algorithm logs."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API)
        self.lines.append(info)

    def pushDebugInfo(self, info: str) -> None:  # noqa: N802 (QGIS API)
        self.lines.append(info)


def loading_context(*outputs: str) -> QgsProcessingContext:
    """A context that loads ``outputs`` into the project after the run, as the algorithm dialog does."""
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    for path in outputs:
        context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails("Output", QgsProject.instance(),
                                                                                    "OUTPUT"))
    return context


# --- the provider ----------------------------------------------------------------------------

def test_provider_lists_every_algorithm_and_the_example_model(processing):
    provider = QgsApplication.processingRegistry().providerById("damp")
    ids = {alg.id() for alg in provider.algorithms()}
    assert ALGORITHMS <= ids
    assert WORKFLOW in ids


def test_the_workflow_has_a_readable_name_and_keeps_its_id_and_parameter_names(processing):
    workflow = QgsApplication.processingRegistry().algorithmById(WORKFLOW)
    assert workflow.displayName() == "Simulate, restore and evaluate"
    assert workflow.createInstance().displayName() == "Simulate, restore and evaluate"
    assert workflow.createInstance().id() == WORKFLOW
    assert {p.name() for p in workflow.parameterDefinitions() if not p.isDestination()} == {
        "clean", "kind", "parameters", "seed", "model"}


def test_every_name_fits_the_toolbox(processing):
    metrics = QFontMetrics(QApplication.font())
    provider = QgsApplication.processingRegistry().providerById("damp")
    too_long = [alg.displayName() for alg in provider.algorithms()
                if metrics.horizontalAdvance(alg.displayName()) > TOOLBOX_TEXT_PX]
    assert not too_long


@pytest.mark.parametrize("algorithm_id", ["damp:restore", "damp:upscale", "damp:routing", "damp:finetune"])
def test_tile_overlap_and_device_are_advanced_parameters(processing, algorithm_id):
    alg = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    technical = [p for p in alg.parameterDefinitions() if p.name() in ("TILE", "HALO", "DEVICE", "TILE_PROMPTS")]
    assert technical and all(p.flags() & p.FlagAdvanced for p in technical)
    assert not alg.parameterDefinition("INPUT").flags() & alg.parameterDefinition("INPUT").FlagAdvanced


@pytest.mark.parametrize("algorithm_id", ["damp:restore", "damp:upscale"])
def test_help_says_what_it_handles_and_how_long_it_takes(processing, algorithm_id):
    text = QgsApplication.processingRegistry().algorithmById(algorithm_id).shortHelpString()
    assert "per megapixel" in text and "Advanced parameters" in text
    for jargon in ("routes every tile", "experts that suit it"):
        assert jargon not in text


class DesktopIface(QObject):
    """The part of QgisInterface the plugin and its dock use; records the docked widgets."""

    currentLayerChanged = pyqtSignal("QgsMapLayer*")  # noqa: N815 (as QgisInterface declares it)

    def __init__(self) -> None:
        super().__init__()
        self.canvas = QgsMapCanvas()
        self.docks: list = []

    def mapCanvas(self) -> QgsMapCanvas:  # noqa: N802 (QGIS API)
        return self.canvas

    def activeLayer(self) -> None:  # noqa: N802 (QGIS API)
        return None

    def addDockWidget(self, area, dock) -> None:  # noqa: N802 (QGIS API)
        self.docks.append((area, dock))

    def removeDockWidget(self, dock) -> None:  # noqa: N802 (QGIS API)
        self.docks = [(area, d) for area, d in self.docks if d is not dock]


def test_init_gui_adds_the_dock_and_unload_removes_it(processing):
    iface = DesktopIface()
    plugin = damp_qgis.classFactory(iface)
    plugin.initGui()
    assert [(area, type(dock).__name__) for area, dock in iface.docks] == [(Qt.RightDockWidgetArea, "DampDock")]
    plugin.unload()
    assert not iface.docks


@pytest.mark.parametrize("algorithm_id", sorted(ALGORITHMS))
def test_every_parameter_is_documented_and_the_paper_cited(processing, algorithm_id):
    alg = QgsApplication.processingRegistry().algorithmById(algorithm_id)
    undocumented = [p.name() for p in alg.parameterDefinitions() if not p.help()]
    assert not undocumented
    assert "arXiv:2512.20251" in alg.shortHelpString()
    assert Path(alg.svgIconPath()).is_file()


# --- simulate, prompt, evaluate --------------------------------------------------------------

def test_simulate_keeps_the_grid_and_records_the_degradation(processing, clean, tmp_path):
    out = processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "gaussian_noise",
                                           "PARAMETERS": "sigma=30", "SEED": 3,
                                           "OUTPUT": str(tmp_path / "noisy.tif")})["OUTPUT"]
    cube, transform, projection = read(out)
    source, source_transform, source_projection = read(clean)
    assert (transform, projection) == (source_transform, source_projection)
    assert cube.shape == source.shape and not np.allclose(cube, source)
    record = json.loads(gdal.Info(out, format="json")["metadata"][""]["DAMP_DEGRADATION"])
    assert record["kind"] == "gaussian_noise" and record["params"]["sigma"] == 30 and record["seed"] == 3


def test_simulate_is_reproducible_with_the_same_seed(processing, clean, tmp_path):
    runs = [processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "stripes", "SEED": 7,
                                             "OUTPUT": str(tmp_path / f"s{i}.tif")})["OUTPUT"] for i in range(2)]
    assert np.array_equal(read(runs[0])[0], read(runs[1])[0])


def test_simulate_parameters_accept_lists_and_words(processing, clean, tmp_path):
    out = processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "complex",
                                           "PARAMETERS": "sigmas=[10, 20], extra=deadlines",
                                           "OUTPUT": str(tmp_path / "complex.tif")})["OUTPUT"]
    record = json.loads(gdal.Info(out, format="json")["metadata"][""]["DAMP_DEGRADATION"])
    assert record["params"]["sigmas"] == [10, 20] and record["params"]["extra"] == "deadlines"


def test_simulate_parameters_without_value_say_how_to_write_them(processing, clean, tmp_path):
    with pytest.raises(QgsProcessingException, match="e.g. sigma=50, ksize=9"):
        processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "gaussian_noise", "PARAMETERS": "sigma",
                                         "OUTPUT": str(tmp_path / "x.tif")})


def test_prompt_table_and_numbers_are_the_engines(processing, noisy, tmp_path):
    result = processing.run("damp:prompt", {"INPUT": str(noisy), "OUTPUT": str(tmp_path / "prompt.csv")})
    expected = prompt_raster(noisy)
    (row,) = read_csv(tmp_path / "prompt.csv")
    for metric in METRIC_NAMES:
        assert result[metric.upper()] == pytest.approx(expected.metrics[metric])
        assert float(row[metric]) == pytest.approx(expected.metrics[metric], rel=1e-6)
    assert (int(row["bands"]), int(row["width"]), int(row["height"])) == (BANDS, SIDE, SIDE)


def test_prompt_map_has_six_bands_on_the_input_extent(processing, noisy, tmp_path):
    result = processing.run("damp:prompt", {"INPUT": str(noisy), "TILE": 16, "OUTPUT": "TEMPORARY_OUTPUT",
                                            "PROMPT_MAP": str(tmp_path / "map.tif")})
    cube, transform, _ = read(result["PROMPT_MAP"])
    assert cube.shape[0] == len(METRIC_NAMES)
    width = cube.shape[2] * transform[1]
    assert (transform[0], transform[3], width) == (GEOTRANSFORM[0], GEOTRANSFORM[3], SIDE * GEOTRANSFORM[1])


def test_evaluate_table_and_numbers_are_the_engines(processing, clean, noisy, tmp_path):
    result = processing.run("damp:evaluate", {"REFERENCE": str(clean), "INPUT": str(noisy),
                                              "OUTPUT": str(tmp_path / "scores.csv")})
    expected = evaluate_rasters(clean, noisy)
    (row,) = read_csv(tmp_path / "scores.csv")
    for key in ("psnr", "ssim", "sam", "ergas"):
        assert result[key.upper()] == pytest.approx(expected[key])
        assert float(row[key]) == pytest.approx(expected[key], rel=1e-6)


def test_evaluate_scores_the_degraded_part_on_its_own(processing, clean, tmp_path):
    lost = processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "band_loss", "PARAMETERS": "fraction=0.1",
                                            "OUTPUT": str(tmp_path / "lost.tif")})["OUTPUT"]
    result = processing.run("damp:evaluate", {"REFERENCE": str(clean), "INPUT": lost,
                                              "OUTPUT": str(tmp_path / "scores.csv")})
    whole, part = read_csv(tmp_path / "scores.csv")
    expected = evaluate_degraded_part(clean, lost)
    assert (whole["part"], part["part"]) == ("whole raster", "degraded part")
    assert part["kind"] == "band_loss" and int(part["bands"]) == round(0.1 * BANDS)
    for key in ("psnr", "ssim", "sam", "ergas"):
        assert result[f"{key.upper()}_DEGRADED_PART"] == pytest.approx(expected.scores[key])
        assert float(part[key]) == pytest.approx(expected.scores[key], rel=1e-6)
    assert float(part["psnr"]) < float(whole["psnr"]) - 20  # the untouched bands no longer flatter it


def test_evaluate_of_a_degradation_of_every_value_has_one_row(processing, clean, noisy, tmp_path):
    result = processing.run("damp:evaluate", {"REFERENCE": str(clean), "INPUT": str(noisy),
                                              "OUTPUT": str(tmp_path / "scores.csv")})
    assert len(read_csv(tmp_path / "scores.csv")) == 1
    assert result["PSNR_DEGRADED_PART"] is None


def test_evaluate_of_a_raster_against_itself_is_perfect(processing, clean):
    result = processing.run("damp:evaluate", {"REFERENCE": str(clean), "INPUT": str(clean),
                                              "OUTPUT": "TEMPORARY_OUTPUT"})
    assert result["SSIM"] > 0.999 and result["SAM"] < 0.01


# --- restore, upscale, routing, fine-tune ----------------------------------------------------

@pytest.fixture(scope="module")
def restored(processing, noisy, model, folder) -> dict:
    """One restore run with every optional output."""
    return processing.run("damp:restore", {
        "INPUT": str(noisy), "MODEL": str(model), "TILE": 32, "HALO": 8, "DEVICE": "cpu",
        "OUTPUT": str(folder / "restored.tif"), "ROUTING_MAP": str(folder / "routing.tif"),
        "PROMPT_MAP": str(folder / "prompt_map.tif"), "REPORT": str(folder / "report.json")})


def test_restore_keeps_grid_crs_and_wavelengths(restored, noisy):
    cube, transform, projection = read(restored["OUTPUT"])
    source, source_transform, source_projection = read(noisy)
    assert cube.shape == source.shape and np.isfinite(cube).all()
    assert (transform, projection) == (source_transform, source_projection)
    assert open_raster(restored["OUTPUT"]).wavelengths == pytest.approx(tuple(WAVELENGTHS), abs=1e-3)


def test_restore_writes_routing_and_prompt_maps(restored, model):
    routing, _, _ = read(restored["ROUTING_MAP"])
    prompt, _, _ = read(restored["PROMPT_MAP"])
    assert routing.shape[0] == len(DAMP(get_preset("tiny")).block_names)
    assert set(np.unique(routing)) <= set(range(1, get_preset("tiny").experts + 1))
    assert prompt.shape[0] == len(METRIC_NAMES)


def test_restore_routes_by_the_scene_prompt_unless_asked_per_tile(processing, tmp_path):
    """With a trained model (the bundled one): a random-init network returns its closed-form
    input whatever the routing."""
    flag = QgsApplication.processingRegistry().algorithmById("damp:restore").parameterDefinition("TILE_PROMPTS")
    assert flag.defaultValue() is False and flag.flags() & flag.FlagAdvanced
    cube = smooth_cube(BANDS, 32, 256)
    cube[:, :, 128:] += np.random.default_rng(2).normal(0, 0.15, (BANDS, 32, 128)).astype(np.float32)
    src = write_raster(tmp_path / "half_noisy.tif", cube, wavelengths=WAVELENGTHS, geotransform=GEOTRANSFORM)
    outputs = {}
    for per_tile in (False, True):
        outputs[per_tile], _, _ = read(processing.run("damp:restore", {
            "INPUT": str(src), "TILE": 64, "DEVICE": "cpu", "TILE_PROMPTS": per_tile,
            "OUTPUT": str(tmp_path / f"restored_{per_tile}.tif")})["OUTPUT"])
    # v2 routes only the network's correction of the closed-form estimate, so the change is small
    change = np.abs(outputs[True] - outputs[False])
    assert change[:, :, :64].max() > 1e-5 and change[:, :, -64:].max() > 1e-5


def test_restore_report_records_device_and_timings(restored):
    report = json.loads(Path(restored["REPORT"]).read_text())
    assert report["device"] == "cpu" and report["seconds"]["total"] > 0
    assert report["output"] == str(Path(restored["OUTPUT"]).resolve())


@pytest.fixture(scope="module")
def restored_sample(processing, model, folder) -> tuple[str, QgsProcessingContext]:
    """The EnMAP sample (224 bands, Int16 reflectance x 10000, nodata bands) restored with load-on-completion."""
    out = str(folder / "sample_restored.tif")
    context = loading_context(out)
    processing.run("damp:restore", {"INPUT": str(SAMPLE), "MODEL": str(model), "DEVICE": "cpu", "OUTPUT": out},
                   context=context)
    return out, context


def test_integer_input_keeps_type_nodata_and_empty_bands(restored_sample):
    out, _ = restored_sample
    info = gdal.Info(out, format="json")
    band = info["bands"][0]
    assert (len(info["bands"]), band["type"], band["noDataValue"]) == (224, "Int16", -32768)
    cube, _, _ = read(out)
    assert (cube[129:135] == -32768).all(), "water-vapour bands 130-135 have no data in the sample"


def test_restored_layer_is_shown_in_true_colour(restored_sample):
    out, context = restored_sample
    layer = QgsRasterLayer(out, "restored")
    context.layerToLoadOnCompletionDetails(out).postProcessor().postProcessLayer(layer, context,
                                                                                 QgsProcessingFeedback())
    wavelengths = np.array([float(b["metadata"][""]["wavelength"]) for b in gdal.Info(out, format="json")["bands"]])
    renderer = layer.renderer()
    assert renderer.type() == "multibandcolor"
    assert [renderer.redBand(), renderer.greenBand(), renderer.blueBand()] == [
        int(np.argmin(np.abs(wavelengths - nm))) + 1 for nm in (640, 550, 460)]
    stretch = renderer.redContrastEnhancement()
    assert stretch.maximumValue() > stretch.minimumValue()


def test_outputs_are_named_after_their_input(restored_sample):
    out, context = restored_sample
    details = context.layerToLoadOnCompletionDetails(out)
    assert details.name == "enmap_potsdam_sample — restored" and details.forceName
    layer = QgsRasterLayer(out, "Output")
    details.postProcessor().postProcessLayer(layer, context, QgsProcessingFeedback())
    assert layer.name() == "enmap_potsdam_sample — restored"


def test_a_simulated_raster_is_named_after_its_input_and_degradation(processing, clean, tmp_path):
    out = str(tmp_path / "striped.tif")
    context = loading_context(out)
    processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "stripes", "OUTPUT": out}, context=context)
    assert context.layerToLoadOnCompletionDetails(out).name == "clean — degraded (stripes)"


def test_names_chain_through_the_example_model(processing, clean, model, tmp_path):
    outputs = {"simulate:degraded": str(tmp_path / "degraded.tif"), "restore:restored": str(tmp_path / "restored.tif"),
               "evaluate_degraded:scores_degraded": str(tmp_path / "before.csv"),
               "evaluate_restored:scores_restored": str(tmp_path / "after.csv")}
    context = loading_context(*outputs.values())
    processing.run(WORKFLOW, {"clean": str(clean), "model": str(model), **outputs}, context=context)
    names = {key: context.layerToLoadOnCompletionDetails(path).name for key, path in outputs.items()}
    degraded = "clean — degraded (gaussian noise)"
    assert names == {"simulate:degraded": degraded, "restore:restored": f"{degraded} — restored",
                     "evaluate_degraded:scores_degraded": f"{degraded} — quality",
                     "evaluate_restored:scores_restored": f"{degraded} — restored — quality"}


def test_the_log_speaks_plainly_and_keeps_the_details_for_verbose(processing, noisy, model, tmp_path):
    logs = {}
    for verbose in (False, True):
        context = QgsProcessingContext()
        if verbose:
            context.setLogLevel(QgsProcessingContext.Verbose)
        feedback = LogFeedback()
        processing.run("damp:restore", {"INPUT": str(noisy), "MODEL": str(model), "DEVICE": "cpu",
                                        "OUTPUT": str(tmp_path / f"restored_{verbose}.tif")},
                       context=context, feedback=feedback)
        logs[verbose] = "\n".join(feedback.lines)
    assert "Restored in" in logs[False] and "on the CPU" in logs[False]
    assert "expert" not in logs[False].lower()
    assert "expert" in logs[True].lower()


def test_upscale_doubles_rows_and_columns_over_the_same_extent(processing, noisy, model, tmp_path):
    out = processing.run("damp:upscale", {"INPUT": str(noisy), "FACTOR": "2", "MODEL": str(model),
                                          "DEVICE": "cpu", "OUTPUT": str(tmp_path / "x2.tif")})["OUTPUT"]
    cube, transform, _ = read(out)
    assert cube.shape == (BANDS, 2 * SIDE, 2 * SIDE)
    assert transform == (GEOTRANSFORM[0], GEOTRANSFORM[1] / 2, 0.0, GEOTRANSFORM[3], 0.0, GEOTRANSFORM[5] / 2)


def test_routing_map_has_one_band_per_decoder_block(processing, noisy, model, tmp_path):
    out = processing.run("damp:routing", {"INPUT": str(noisy), "MODEL": str(model), "TILE": 32, "DEVICE": "cpu",
                                          "OUTPUT": str(tmp_path / "routing.tif")})["OUTPUT"]
    cube, transform, _ = read(out)
    assert cube.shape == (len(DAMP(get_preset("tiny")).block_names), SIDE, SIDE)
    assert transform == GEOTRANSFORM


def test_finetune_writes_a_model_that_restore_accepts(processing, model, tmp_path):
    scene = write_raster(tmp_path / "scene.tif", smooth_cube(BANDS, 64, 64), wavelengths=WAVELENGTHS)
    feedback = LogFeedback()
    tuned = processing.run("damp:finetune", {"INPUT": [str(scene)], "MODEL": str(model), "STEPS": 2,
                                             "DEVICE": "cpu", "OUTPUT": str(tmp_path / "tuned.safetensors")},
                           feedback=feedback)
    assert Path(tuned["OUTPUT"]).with_suffix(".json").is_file()
    log = "\n".join(feedback.lines)
    assert str(tmp_path / "tuned.safetensors") in log and ".finetune" not in log  # the final file, not the staging one
    assert "step 1 of 2: loss" in log and "with the fine-tuned one" in log  # loss and held-out check
    out = processing.run("damp:restore", {"INPUT": str(scene), "MODEL": tuned["OUTPUT"], "DEVICE": "cpu",
                                          "OUTPUT": str(tmp_path / "with_tuned.tif")})["OUTPUT"]
    assert Path(out).is_file()


# --- cancel and bad input --------------------------------------------------------------------

def test_cancel_ends_as_cancelled_and_leaves_no_output(processing, model, folder, tmp_path):
    scene = write_raster(folder / "nine_tiles.tif", smooth_cube(BANDS, 80, 80))  # 9 tiles: 3 batches of up to 4
    feedback = RecordingFeedback(cancel_after=0)  # the first progress comes after the first tile
    results = processing.run("damp:restore", {"INPUT": str(scene), "MODEL": str(model), "TILE": 32, "HALO": 8,
                                              "DEVICE": "cpu", "OUTPUT": str(tmp_path / "cancelled.tif"),
                                              "ROUTING_MAP": str(tmp_path / "routing.tif")}, feedback=feedback)
    assert results == {} and feedback.warnings == ["Cancelled: no output was written."] and not feedback.errors
    assert not list(tmp_path.iterdir())


def test_vector_layer_is_refused(processing, tmp_path):
    vector = tmp_path / "points.geojson"
    vector.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                      '"geometry": {"type": "Point", "coordinates": [13.0, 52.4]}}]}')
    with pytest.raises(QgsProcessingException, match="not a raster layer"):
        processing.run("damp:prompt", {"INPUT": str(vector), "OUTPUT": "TEMPORARY_OUTPUT"})


def test_single_band_raster_is_refused(processing, tmp_path):
    single = write_raster(tmp_path / "one.tif", smooth_cube(1, SIDE, SIDE))
    with pytest.raises(QgsProcessingException, match="at least 3"):
        processing.run("damp:restore", {"INPUT": str(single), "OUTPUT": str(tmp_path / "out.tif")})


def test_missing_model_file_is_refused(processing, noisy, tmp_path):
    with pytest.raises(QgsProcessingException, match="No model file"):
        processing.run("damp:restore", {"INPUT": str(noisy), "MODEL": str(tmp_path / "gone.safetensors"),
                                        "OUTPUT": str(tmp_path / "out.tif")})


def test_a_model_card_of_another_version_is_refused(processing, noisy, model, tmp_path):
    foreign = tmp_path / model.name
    foreign.write_bytes(model.read_bytes())
    card = json.loads(model.with_suffix(".json").read_text())
    card["preset"]["bands"] = card["bands"] = 50  # the band layout of a version-1 card
    foreign.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(QgsProcessingException, match="another version of DAMP"):
        processing.run("damp:restore", {"INPUT": str(noisy), "MODEL": str(foreign),
                                        "OUTPUT": str(tmp_path / "out.tif")})


def test_bad_bands_take_numbers_and_ranges():
    assert parse_bands("1, 2;130 - 132 4") == [1, 2, 4, 130, 131, 132]
    assert parse_bands("  ") is None


def test_restore_rebuilds_bad_bands(processing, noisy, model, tmp_path):
    out = processing.run("damp:restore", {"INPUT": str(noisy), "MODEL": str(model), "BAD_BANDS": "3-4",
                                          "DEVICE": "cpu", "OUTPUT": str(tmp_path / "rebuilt.tif")})["OUTPUT"]
    cube, _, _ = read(out)
    assert cube.shape == (BANDS, SIDE, SIDE) and np.isfinite(cube[2:4]).all()


def test_bad_band_list_says_how_to_write_it(processing, noisy, model, tmp_path):
    with pytest.raises(QgsProcessingException, match="e.g. 1,2,130-135"):
        processing.run("damp:restore", {"INPUT": str(noisy), "MODEL": str(model), "BAD_BANDS": "3, x",
                                        "OUTPUT": str(tmp_path / "out.tif")})


NO_TORCH = """
import os, sys
sys.modules["torch"] = None  # any 'import torch' now raises ImportError, as without PyTorch
sys.path[:0] = [{root!r}, os.path.join('/usr/share/qgis/python/plugins')]
from qgis.core import QgsApplication, QgsProcessingException
app = QgsApplication([], False)
app.initQgis()
from processing.core.Processing import Processing
Processing.initialize()
import processing
import damp_qgis
from damp_qgis.algorithms.restore import parse_bands
from damp_qgis.algorithms.base import DampAlgorithm
plugin = damp_qgis.classFactory(None)
plugin.initProcessing()
print(sorted(a.id() for a in plugin.provider.algorithms()))
refused = [a.canExecute() for a in plugin.provider.algorithms() if isinstance(a, DampAlgorithm)]
print("REFUSED:", sum(not ok for ok, _ in refused), "of", len(refused))
print("WHY:", refused[0][1])
try:
    processing.run("damp:prompt", {{"INPUT": {raster!r}, "OUTPUT": "TEMPORARY_OUTPUT"}})
except QgsProcessingException as exc:
    print("ERROR:", exc)
plugin.unload()
app.exitQgis()
"""


def test_plugin_lists_algorithms_without_torch_and_says_how_to_install_it(clean):
    script = NO_TORCH.format(root=str(ROOT), raster=str(clean))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert all(alg in run.stdout for alg in ALGORITHMS)
    assert "REFUSED: 8 of 8" in run.stdout  # the toolbox says so before the dialog opens
    assert "WHY: DAMP needs PyTorch and safetensors" in run.stdout
    assert "ERROR: DAMP needs PyTorch" in run.stdout and "pip install torch==2.13.0 safetensors" in run.stdout
