"""Take the README's pictures from the real QGIS desktop under Xvfb: docs/images/dock.png (the DAMP
dock on a noisy EnMAP crop, with the spectral profile of one pixel in the clean, noisy and restored
rasters) and docs/images/restore_dialog.png (the Restore dialog).

Steps: add Gaussian noise to the bundled EnMAP sample with ``damp degrade`` and restore it with
``damp restore``; make a fresh QGIS profile with the plugin linked into its plugins folder
(``package_plugin.py link``: QGIS needs ``metadata.txt`` inside the plugin folder) and enabled;
start Xvfb and QGIS with ``screenshot_in_qgis.py``, which loads the three rasters under the names
the plugin gives its outputs, waits until the dock shows values, grabs the main window, opens and
grabs the Restore dialog, and quits. Uses the default model (``$DAMP_MODEL`` or the bundled one);
if there is none yet, a random-initialised tiny model stands in (its card has no reference
ranges, so the metric bars stay empty) and a warning says so.

Run with ``make screenshot`` (or ``.venv/bin/python scripts/screenshot.py [dock.png [dialog.png]]``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
SAMPLE = ROOT / "resources" / "sample" / "enmap_potsdam_sample.tif"
INSIDE = Path(__file__).resolve().with_name("screenshot_in_qgis.py")
DEFAULT_OUTPUT = ROOT / "docs" / "images" / "dock.png"
DEFAULT_DIALOG = ROOT / "docs" / "images" / "restore_dialog.png"
SAMPLE_NAME = "enmap_potsdam_sample"
SCREEN = "1280x960x24"
QGIS_TIMEOUT_S = 240


def sample_layers(folder: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    """[(path, layer name)] of the clean sample, its noisy copy (σ = 30/255, by the damp CLI) and the
    restoration of that, named as the plugin names its outputs; the noisy one last (it ends on top)."""
    damp = str(VENV / "bin" / "damp")
    noisy, restored = folder / "enmap_potsdam_noisy.tif", folder / "enmap_potsdam_restored.tif"
    subprocess.run([damp, "degrade", str(SAMPLE), str(noisy), "--kind", "gaussian_noise", "--param", "sigma=30",
                    "--seed", "1"], check=True, stdout=subprocess.DEVNULL, env=env)
    subprocess.run([damp, "restore", str(noisy), str(restored)], check=True, stdout=subprocess.DEVNULL, env=env)
    degraded_name = f"{SAMPLE_NAME} — degraded (gaussian noise)"
    return [(str(SAMPLE), SAMPLE_NAME), (str(restored), f"{degraded_name} — restored"), (str(noisy), degraded_name)]


def model_environment(folder: Path) -> dict[str, str]:
    """``DAMP_MODEL`` for QGIS: none when the default model exists, else a random-init stand-in."""
    from damp_engine.checkpoint import default_model_path

    if default_model_path().is_file():
        return {}
    import torch

    from damp_engine.checkpoint import save_checkpoint
    from damp_engine.model import DAMP, get_preset

    print(f"warning: no model at {default_model_path()}; using a random-initialised tiny model", file=sys.stderr)
    torch.manual_seed(0)
    path = save_checkpoint(DAMP(get_preset("tiny")), folder / "untrained_tiny.safetensors",
                           {"name": "untrained tiny (stand-in)"})
    return {"DAMP_MODEL": str(path)}


def fresh_profiles(folder: Path) -> Path:
    """A QGIS profiles folder whose default profile has the DAMP plugin linked in and enabled."""
    profiles = folder / "profiles"
    profile = profiles / "profiles" / "default"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "package_plugin.py"), "link",
                    str(profile / "python" / "plugins")], check=True, stdout=subprocess.DEVNULL)
    ini = profile / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text("[PythonPlugins]\ndamp_qgis=true\n", encoding="utf-8")
    return profiles


def free_display() -> int:
    """The first X display number from 77 up with no lock file."""
    number = 77
    while Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    return number


def start_xvfb(display: int) -> subprocess.Popen:
    """Start Xvfb on ``:display`` and wait until its socket exists."""
    server = subprocess.Popen(["Xvfb", f":{display}", "-screen", "0", SCREEN, "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{display}")
    deadline = time.monotonic() + 20
    while not socket.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"Xvfb did not start on :{display}")
        time.sleep(0.1)
    return server


def main() -> int:
    output = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else DEFAULT_OUTPUT
    dialog = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else DEFAULT_DIALOG
    for path in (output, dialog):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
    site_packages = next((VENV / "lib").glob("python3*/site-packages"))
    with tempfile.TemporaryDirectory(prefix="damp-shot-") as tmp:
        folder = Path(tmp)
        models = model_environment(folder)
        layers = sample_layers(folder, {**os.environ, **models})
        display = free_display()
        env = {
            **os.environ, **models,
            "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb", "HOME": str(folder),
            "PYTHONPATH": str(site_packages),
            "DAMP_SCREENSHOT": str(output), "DAMP_SCREENSHOT_DIALOG": str(dialog),
            "DAMP_SCREENSHOT_LAYERS": json.dumps(layers),
        }
        xvfb = start_xvfb(display)
        try:
            result = subprocess.run(
                ["qgis", "--profiles-path", str(fresh_profiles(folder)), "--nologo", "--code", str(INSIDE)],
                env=env, timeout=QGIS_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        finally:
            xvfb.terminate()
            xvfb.wait()
    if result.returncode != 0 or not output.is_file() or not dialog.is_file():
        print(result.stdout[-4000:], file=sys.stderr)
        print(f"QGIS exited with {result.returncode}: the DAMP dock showed no values in time, or the Restore "
              "dialog did not open" + (f" (see {output})" if output.is_file() else ""), file=sys.stderr)
        return 1
    print(f"wrote {output} and {dialog}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
