"""Take docs/images/dock.png: the real QGIS desktop, under Xvfb, showing the DAMP dock on a noisy EnMAP crop.

Steps: add Gaussian noise to the bundled EnMAP sample with ``damp degrade``; make a fresh QGIS
profile with the plugin linked into its plugins folder (``package_plugin.py link``: QGIS needs
``metadata.txt`` inside the plugin folder) and enabled; start Xvfb and QGIS with that raster and
``screenshot_in_qgis.py``, which waits until the dock shows values, grabs the main window and
quits. Uses the default model (``$DAMP_MODEL`` or the bundled one); if there is none yet, a
random-initialised tiny model stands in (its card has no reference ranges, so the metric bars
stay empty) and a warning says so.

Run with ``make screenshot`` (or ``.venv/bin/python scripts/screenshot.py [output.png]``).
"""
from __future__ import annotations

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
SCREEN = "1280x960x24"
QGIS_TIMEOUT_S = 240


def degraded_sample(folder: Path) -> Path:
    """The EnMAP sample with Gaussian noise (σ = 30/255 of its range), written by the damp CLI."""
    out = folder / "enmap_potsdam_noisy.tif"
    subprocess.run([str(VENV / "bin" / "damp"), "degrade", str(SAMPLE), str(out), "--kind", "gaussian_noise",
                    "--param", "sigma=30", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    return out


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
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    site_packages = next((VENV / "lib").glob("python3*/site-packages"))
    with tempfile.TemporaryDirectory(prefix="damp-shot-") as tmp:
        folder = Path(tmp)
        raster = degraded_sample(folder)
        display = free_display()
        env = {
            **os.environ, **model_environment(folder),
            "DISPLAY": f":{display}", "QT_QPA_PLATFORM": "xcb", "HOME": str(folder),
            "PYTHONPATH": str(site_packages),
            "DAMP_SCREENSHOT": str(output),
        }
        xvfb = start_xvfb(display)
        try:
            result = subprocess.run(
                ["qgis", "--profiles-path", str(fresh_profiles(folder)), "--nologo", str(raster),
                 "--code", str(INSIDE)],
                env=env, timeout=QGIS_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        finally:
            xvfb.terminate()
            xvfb.wait()
    if result.returncode != 0 or not output.is_file():
        print(result.stdout[-4000:], file=sys.stderr)
        print(f"QGIS exited with {result.returncode}: the DAMP dock showed no values in time"
              + (f" (see {output})" if output.is_file() else ""), file=sys.stderr)
        return 1
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
