"""DAMP hyperspectral restoration: the QGIS plugin (a Processing provider and a dock).

QGIS calls :func:`classFactory`. The plugin needs the ``damp_engine`` package: the plugin ZIP
vendors it in ``vendor/`` (with the bundled model in ``vendor/resources``), and a development
checkout has it beside this folder; whichever is present is put on ``sys.path`` here.
"""
from __future__ import annotations

import sys
from pathlib import Path


def _add_engine_to_path() -> None:
    """Make ``import damp_engine`` find the engine that ships with this plugin."""
    here = Path(__file__).resolve().parent
    for folder in (here / "vendor", here.parent):
        if (folder / "damp_engine" / "__init__.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return


def classFactory(iface):  # noqa: N802 (the name QGIS looks for)
    """Create the plugin; ``iface`` is None under qgis_process."""
    _add_engine_to_path()
    from .plugin import DampPlugin

    return DampPlugin(iface)
