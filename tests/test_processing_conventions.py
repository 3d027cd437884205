"""The DAMP algorithms follow QGIS Processing's conventions (issue 11): every text a user reads is
translated where it is written, group ids are constants, every algorithm has search tags and
checks for torch in canExecute(), and prompt, simulate and evaluate report progress and stop
when cancelled; a cancelled run ends as cancelled (a warning, no outputs), never as a failure."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsApplication

from damp_qgis.algorithms.base import GROUPS, DampAlgorithm
from helpers import ROOT, RecordingFeedback, smooth_cube, write_raster

pytestmark = pytest.mark.qgis
PLUGIN = ROOT / "damp_qgis"
BANDS, SIDE = 31, 40


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return write_raster(tmp_path_factory.mktemp("conventions") / "clean.tif", smooth_cube(BANDS, SIDE, SIDE))


@pytest.fixture(scope="module")
def noisy(clean) -> Path:
    rng = np.random.default_rng(3)
    cube = smooth_cube(BANDS, SIDE, SIDE) + rng.normal(0, 0.05, (BANDS, SIDE, SIDE)).astype(np.float32)
    return write_raster(clean.parent / "noisy.tif", cube)


def damp_algorithms() -> list[DampAlgorithm]:
    provider = QgsApplication.processingRegistry().providerById("damp")
    return [alg for alg in provider.algorithms() if isinstance(alg, DampAlgorithm)]


# --- translation -----------------------------------------------------------------------------

def untranslatable_calls(source: str) -> list[int]:
    """Lines of ``tr(x)``, ``self.tr(x)`` or ``QCoreApplication.translate(context, x)`` calls whose
    text x is not a string literal (Qt's translation tools see literals only). The bodies of
    functions named ``tr``, which pass their argument on, are not counted."""
    lines = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef) and node.name == "tr":
            return
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            position = {"tr": 0, "translate": 1}.get(name)
            if position is not None:
                text = node.args[position] if len(node.args) > position else None
                if not (isinstance(text, ast.Constant) and isinstance(text.value, str)):
                    lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return lines


def test_the_translation_scan_sees_variables_and_f_strings():
    source = ('HELP = tr("literal")\nclass A:\n    def tr(self, text):\n        return translate("C", text)\n'
              '    def f(self, name):\n        self.tr(name)\n        tr(f"x {name}")\n'
              '        self.tr("ok").format(x=1)\n')
    assert untranslatable_calls(source) == [6, 7]


def test_every_user_text_is_a_literal_translated_where_it_is_written():
    found = {f"{path.relative_to(PLUGIN)}:{line}" for path in sorted(PLUGIN.rglob("*.py"))
             for line in untranslatable_calls(path.read_text(encoding="utf-8"))}
    assert not found, sorted(found)


# --- identity: groups and tags ---------------------------------------------------------------

def test_group_ids_are_constants_and_groups_their_titles(processing):
    for alg in damp_algorithms():
        assert alg.groupId() == type(alg).GROUP_ID and alg.groupId() in GROUPS, alg.id()
        assert alg.group() == GROUPS[alg.groupId()]
    assert set(GROUPS) == {"restoration", "analysis", "simulation", "training"}  # ids saved scripts may name


def test_every_algorithm_has_search_tags(processing):
    for alg in damp_algorithms():
        tags = alg.tags()
        assert "hyperspectral" in tags and "DAMP" in tags, alg.id()
        assert all(tag == tag.strip() and tag for tag in tags)


def test_every_algorithm_can_execute_where_torch_imports(processing):
    assert all(alg.canExecute() == (True, "") for alg in damp_algorithms())


# --- progress --------------------------------------------------------------------------------

def rising_to_100(progress: list[float]) -> bool:
    return bool(progress) and progress == sorted(progress) and progress[-1] == pytest.approx(100.0)


def test_prompt_reports_progress(processing, noisy):
    feedback = RecordingFeedback()
    processing.run("damp:prompt", {"INPUT": str(noisy), "OUTPUT": "TEMPORARY_OUTPUT"}, feedback=feedback)
    assert rising_to_100(feedback.progress), feedback.progress


def test_simulate_reports_progress(processing, clean, tmp_path):
    feedback = RecordingFeedback()
    processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "gaussian_noise", "OUTPUT": str(tmp_path / "d.tif")},
                   feedback=feedback)
    assert rising_to_100(feedback.progress), feedback.progress


def test_evaluate_reports_progress(processing, clean, noisy):
    feedback = RecordingFeedback()
    processing.run("damp:evaluate", {"REFERENCE": str(clean), "INPUT": str(noisy), "OUTPUT": "TEMPORARY_OUTPUT"},
                   feedback=feedback)
    assert rising_to_100(feedback.progress), feedback.progress


# --- cancel ----------------------------------------------------------------------------------

def assert_ended_as_cancelled(results: dict, feedback: RecordingFeedback) -> None:
    """No outputs, one warning that says so, and no error reported."""
    assert results == {}
    assert any("Cancelled" in warning for warning in feedback.warnings), feedback.warnings
    assert not feedback.errors


def test_a_cancelled_prompt_ends_as_cancelled_without_a_table(processing, noisy, tmp_path):
    feedback = RecordingFeedback(cancel_after=0)
    results = processing.run("damp:prompt", {"INPUT": str(noisy), "OUTPUT": str(tmp_path / "prompt.csv")},
                             feedback=feedback)
    assert_ended_as_cancelled(results, feedback)
    assert not list(tmp_path.iterdir())


def test_a_cancelled_simulation_ends_as_cancelled_before_writing(processing, clean, tmp_path):
    feedback = RecordingFeedback(cancel_after=0)
    results = processing.run("damp:simulate", {"INPUT": str(clean), "KIND": "gaussian_noise",
                                               "OUTPUT": str(tmp_path / "degraded.tif")}, feedback=feedback)
    assert_ended_as_cancelled(results, feedback)
    assert not list(tmp_path.iterdir())


def test_a_cancelled_evaluation_ends_as_cancelled_without_a_table(processing, clean, noisy, tmp_path):
    feedback = RecordingFeedback(cancel_after=0)
    results = processing.run("damp:evaluate", {"REFERENCE": str(clean), "INPUT": str(noisy),
                                               "OUTPUT": str(tmp_path / "quality.csv")}, feedback=feedback)
    assert_ended_as_cancelled(results, feedback)
    assert not list(tmp_path.iterdir())
