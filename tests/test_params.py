"""The engine's API is the boundary (issue 11): one parser for band lists and for NAME=VALUE
parameters, tiling defaults written once, used alike by the `damp` command and the QGIS plugin;
`damp_engine`'s public names resolve lazily and never shadow a submodule."""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import damp_engine
from damp_engine import cli, limits
from damp_engine.errors import DampInputError
from damp_engine.params import parse_bands, parse_parameters


# --- band lists ------------------------------------------------------------------------------

def test_bands_take_numbers_and_rising_ranges_in_any_order():
    assert parse_bands("3,5-7") == [3, 5, 6, 7]
    assert parse_bands("1, 2;130 - 132 4") == [1, 2, 4, 130, 131, 132]
    assert parse_bands("7,7,6-7") == [6, 7]


def test_no_bands_is_none():
    assert parse_bands(None) is None
    assert parse_bands("  ") is None


@pytest.mark.parametrize("text", ["one,two", "5-3", "0", "1,,x"])
def test_unreadable_bands_say_how_to_write_them(text):
    with pytest.raises(DampInputError, match="band number"):
        parse_bands(text)


class Called(Exception):
    """Raised by a stand-in for an engine function, carrying the keyword arguments it was given."""


def test_cli_reads_bad_bands_with_the_engine_parser(monkeypatch, tmp_path):
    def restore_raster(*args, **kwargs):
        raise Called(kwargs)

    monkeypatch.setattr("damp_engine.tiling.restore_raster", restore_raster)
    monkeypatch.setattr("damp_engine.raster.bound_gdal_cache", lambda path: None)
    with pytest.raises(Called) as called:
        cli.cmd_restore(cli.build_parser().parse_args(
            ["restore", "in.tif", str(tmp_path / "out.tif"), "--bad-bands", "3,5-7"]))
    assert called.value.args[0]["bad_bands"] == [3, 5, 6, 7]


# --- NAME=VALUE parameters -------------------------------------------------------------------

def test_parameters_are_json_values_or_words():
    assert parse_parameters("sigma=50, sigmas=[10, 30]; extra=stripes") == {
        "sigma": 50, "sigmas": [10, 30], "extra": "stripes"}


def test_repeated_parameters_are_read_one_by_one_later_names_winning():
    assert parse_parameters(["sigma=50", "sigmas=[10, 30], sigma=20"]) == {"sigma": 20, "sigmas": [10, 30]}
    assert parse_parameters(None) == {} and parse_parameters("") == {}


@pytest.mark.parametrize("text", ["sigma", "=3", "1x=2"])
def test_unreadable_parameters_say_how_to_write_them(text):
    with pytest.raises(DampInputError, match="e.g. sigma=50, ksize=9"):
        parse_parameters(text)


def test_cli_reads_degrade_parameters_with_the_engine_parser(monkeypatch, tmp_path, capsys):
    given = {}

    class Record:
        def to_dict(self):
            return {}

    monkeypatch.setattr("damp_engine.scene.degrade_raster", lambda *a, **kw: given.update(kw) or Record())
    args = cli.build_parser().parse_args(["degrade", "in.tif", "out.tif", "--kind", "noniid_noise",
                                          "--param", "sigmas=[10, 30]", "--param", "extra=stripes"])
    cli.cmd_degrade(args)
    assert given == {"seed": 0, "sigmas": [10, 30], "extra": "stripes"}


# --- defaults written once -------------------------------------------------------------------

def test_engine_functions_default_to_the_limits():
    from damp_engine.batch import restore_batch
    from damp_engine.tiling import restore_raster, routing_raster

    for function in (restore_raster, routing_raster, restore_batch):
        defaults = {k: p.default for k, p in inspect.signature(function).parameters.items()}
        assert defaults["tile"] == limits.DEFAULT_TILE and defaults["halo"] == limits.DEFAULT_HALO
        assert defaults.get("batch", limits.DEFAULT_BATCH) == limits.DEFAULT_BATCH


@pytest.mark.parametrize("command", ["restore", "upscale", "restore-batch"])
def test_cli_defaults_are_the_limits(command):
    extra = {"restore": ["a.tif", "b.tif"], "upscale": ["a.tif", "b.tif", "--factor", "2"],
             "restore-batch": ["a.tif", "--out", "x"]}[command]
    args = cli.build_parser().parse_args([command, *extra])
    assert (args.tile, args.halo, args.batch) == (limits.DEFAULT_TILE, limits.DEFAULT_HALO, limits.DEFAULT_BATCH)


# --- the public API --------------------------------------------------------------------------

def test_every_public_name_resolves():
    for name in damp_engine.__all__:
        assert getattr(damp_engine, name) is not None, name
    assert damp_engine.parse_bands is parse_bands
    assert damp_engine.DEFAULT_TILE == limits.DEFAULT_TILE


def test_no_public_name_shadows_a_submodule():
    submodules = {m.name for m in pkgutil.iter_modules(damp_engine.__path__)}
    assert not submodules & set(damp_engine.__all__)
    degrade = importlib.import_module("damp_engine.degrade")
    assert damp_engine.degrade is degrade
    assert damp_engine.degrade_cube is degrade.degrade


def test_importing_the_api_its_parsers_and_names_loads_no_torch():
    code = ("import sys, damp_engine; damp_engine.parse_bands('1-2'); damp_engine.parse_parameters('a=1'); "
            "damp_engine.FAMILY_TITLES; damp_engine.METRIC_TITLES; damp_engine.KINDS; damp_engine.one_line; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


# --- the plugin uses the same parsers and defaults -------------------------------------------

@pytest.mark.qgis
def test_plugin_parses_and_defaults_as_the_engine(qgis_app):
    from damp_qgis.algorithms import restore, restore_folder, simulate, upscale

    assert restore.parse_bands is parse_bands and restore_folder.parse_bands is parse_bands
    assert simulate.parse_parameters is parse_parameters
    for algorithm in (restore.RestoreAlgorithm(), upscale.UpscaleAlgorithm()):
        algorithm.initAlgorithm()
        assert algorithm.parameterDefinition("TILE").defaultValue() == limits.DEFAULT_TILE
        assert algorithm.parameterDefinition("TILE").minimum() == limits.MIN_TILE
        assert algorithm.parameterDefinition("HALO").defaultValue() == limits.DEFAULT_HALO


PLUGIN = Path(__file__).resolve().parents[1] / "damp_qgis"
SUBMODULES = {m.name for m in pkgutil.iter_modules(damp_engine.__path__)}


def engine_submodule_imports(source: str) -> list[str]:
    """The ``damp_engine`` submodules a Python source imports, in any form: ``import damp_engine.x``,
    ``from damp_engine.x import y``, ``from damp_engine import x`` (x a submodule)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("damp_engine.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("damp_engine."):
                found.append(node.module)
            elif node.module == "damp_engine":
                found += [f"damp_engine.{a.name}" for a in node.names if a.name in SUBMODULES]
    return found


def test_the_import_scan_sees_every_form():
    source = ("import damp_engine\nimport damp_engine.raster\nfrom damp_engine.reading import read_raster\n"
              "from damp_engine import degrade, open_raster\ndef f():\n    from damp_engine.tiling import x\n")
    assert sorted(engine_submodule_imports(source)) == ["damp_engine.degrade", "damp_engine.raster",
                                                         "damp_engine.reading", "damp_engine.tiling"]


def test_the_plugin_calls_the_engine_through_its_public_api():
    deeper = {f"{path.relative_to(PLUGIN)}: {module}" for path in sorted(PLUGIN.rglob("*.py"))
              for module in engine_submodule_imports(path.read_text(encoding="utf-8"))}
    assert not deeper, sorted(deeper)
