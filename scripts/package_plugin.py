"""Lay out the DAMP QGIS plugin: as a ZIP for the plugin manager, or as symlinks for development.

    python3 scripts/package_plugin.py zip dist/damp_qgis.zip     # make package
    python3 scripts/package_plugin.py link <profile>/python/plugins  # make install-plugin

Both give the same folder, ``damp_qgis/``:

    damp_qgis/                    the plugin package (damp_qgis/ of the repository)
    damp_qgis/metadata.txt        metadata.txt of the repository
    damp_qgis/LICENSE             the GPL-3.0 licence text
    damp_qgis/vendor/damp_engine  the engine, put on sys.path by damp_qgis/__init__.py
    damp_qgis/vendor/resources    icons and models (the bundled .safetensors + .json card, the
                                  example .model3), found beside the engine as in the repository

The link layout points back into the checkout, so edits take effect at the next QGIS start.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "damp_qgis"
MODEL_FILES = ("*.safetensors", "*.json", "*.model3")


def plugin_files() -> list[tuple[Path, str]]:
    """(file in the repository, path inside the plugin ZIP) for every shipped file."""
    def tree(source: Path, target: str) -> list[tuple[Path, str]]:
        return [(f, f"{target}/{f.relative_to(source).as_posix()}") for f in sorted(source.rglob("*"))
                if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"]

    models = ROOT / "resources" / "models"
    files = tree(ROOT / PLUGIN, PLUGIN) + [(ROOT / "metadata.txt", f"{PLUGIN}/metadata.txt"),
                                           (ROOT / "LICENSE", f"{PLUGIN}/LICENSE")]
    files += tree(ROOT / "damp_engine", f"{PLUGIN}/vendor/damp_engine")
    files += tree(ROOT / "resources" / "icons", f"{PLUGIN}/vendor/resources/icons")
    files += [(f, f"{PLUGIN}/vendor/resources/models/{f.name}")
              for pattern in MODEL_FILES for f in sorted(models.glob(pattern))]
    return files


def build_zip(dest: Path) -> None:
    """Write the plugin ZIP (one top folder, damp_qgis/)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for source, name in plugin_files():
            archive.write(source, name)
    tmp.replace(dest)
    print(f"wrote {dest} ({dest.stat().st_size / 1e6:.1f} MB)")


def link(plugins_dir: Path) -> None:
    """Create <plugins_dir>/damp_qgis as symlinks into the checkout (replacing an older install)."""
    folder = plugins_dir / PLUGIN
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    (folder / "vendor").mkdir(parents=True)
    for entry in sorted((ROOT / PLUGIN).iterdir()):
        if entry.name != "__pycache__":
            (folder / entry.name).symlink_to(entry)
    (folder / "metadata.txt").symlink_to(ROOT / "metadata.txt")
    (folder / "vendor" / "damp_engine").symlink_to(ROOT / "damp_engine")
    (folder / "vendor" / "resources").symlink_to(ROOT / "resources")
    print(f"linked {folder} -> {ROOT}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("zip", "link"))
    parser.add_argument("target", type=Path, help="the ZIP to write, or the QGIS plugins folder to link into")
    args = parser.parse_args(argv)
    if args.mode == "zip":
        build_zip(args.target)
    else:
        link(args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
