"""Helpers shared by the plugin tests that run QGIS's command line, qgis_process."""
from __future__ import annotations

import json
import os
import subprocess
import sysconfig
from pathlib import Path

QGIS_PROCESS = "/usr/bin/qgis_process.bin"  # Debian's /usr/bin/qgis_process wrapper fails on 3.22


def qgis_env(home: Path, **extra: str) -> dict[str, str]:
    """os.environ for a qgis_process run: a throwaway HOME, offscreen Qt, torch from the venv."""
    env = {**os.environ, "HOME": str(home), "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    for inherited in ("DAMP_MODEL", "QGIS_CUSTOM_CONFIG_PATH", "QGIS_OPTIONS_PATH"):  # the last two: pytest-qgis's
        env.pop(inherited, None)
    return {**env, **extra}


def qgis_process(env: dict, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def run_json(env: dict, algorithm: str, cwd: Path | None = None, **parameters) -> dict:
    """`qgis_process.bin --json run ALGORITHM -- KEY=VALUE ...`, parsed; fails the test on a non-zero exit."""
    done = qgis_process(env, "--json", "run", algorithm, "--", *(f"{k}={v}" for k, v in parameters.items()), cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(done.stdout)
