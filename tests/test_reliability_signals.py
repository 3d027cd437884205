"""Signals: a `damp` run stopped by SIGINT or SIGTERM leaves nothing behind; one killed by SIGKILL
leaves its temporary file, which the next run into the same folder removes.

The run under test is a real `damp` process. It is held, deterministically, just after it has
written its first block into the hidden temporary file: a wrapper around `RasterWriter.write`
prints a line and waits on stdin, and the test sends the signal once it has read that line.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, smooth_cube, write_raster

from damp_engine.cli import main

HOLD_AFTER_FIRST_WRITE = """
import sys
import damp_engine.raster as raster

write = raster.RasterWriter.write

def held(self, *args, **kwargs):
    write(self, *args, **kwargs)
    print("wrote", self.temp.name, flush=True)
    sys.stdin.readline()  # wait for the test to send its signal

raster.RasterWriter.write = held
from damp_engine.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start_held(*argv) -> tuple[subprocess.Popen, str]:
    """Start `damp ARGV` and return it, held after its first write, with its temporary file's name."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("DAMP_TRACEBACK", None)
    # as from a shell: SIGINT at its default, even if something in this test process left it ignored
    # (an ignored SIGINT is inherited, and Python then never raises KeyboardInterrupt)
    child = subprocess.Popen([sys.executable, "-c", HOLD_AFTER_FIRST_WRITE, *map(str, argv)], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    line = child.stdout.readline()
    if not line.startswith("wrote "):
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the run did not reach its first write: {line}{out}{err[-2000:]}")
    return child, line.split()[1]


@pytest.fixture
def scene(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    return write_raster(src / "scene.tif", smooth_cube(8, 40, 40))


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_signal_mid_write_leaves_nothing(scene, out_dir, signum, code, word):
    before = scene.read_bytes()
    child, temp = start_held("degrade", scene, out_dir / "noisy.tif", "--kind", "gaussian_noise")
    assert temp in os.listdir(out_dir) and f".{child.pid}." in temp
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    assert child.returncode == code
    assert err == f"damp: {word}; no output was written.\n"
    assert os.listdir(out_dir) == []
    assert scene.read_bytes() == before


def test_sigterm_during_restore_leaves_no_output_and_no_report(scene, out_dir):
    child, _ = start_held("restore", scene, out_dir / "restored.tif", "--tile", "32", "--device", "cpu",
                          "--report", out_dir / "report.json", "--routing-map", out_dir / "routing.tif")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert (child.returncode, err) == (143, "damp: terminated; no output was written.\n")
    assert os.listdir(out_dir) == []


def test_temp_file_of_a_killed_run_is_removed_by_the_next_run(capsys, scene, out_dir):
    child, temp = start_held("degrade", scene, out_dir / "noisy.tif", "--kind", "gaussian_noise")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=120)  # reaps it: its pid no longer names a live process
    assert child.returncode == -signal.SIGKILL
    assert temp in os.listdir(out_dir)  # SIGKILL cannot be handled
    assert main(["degrade", str(scene), str(out_dir / "again.tif"), "--kind", "stripes"]) == 0
    assert os.listdir(out_dir) == ["again.tif"]


def test_a_live_runs_temp_file_is_left_alone(capsys, scene, out_dir):
    child, temp = start_held("degrade", scene, out_dir / "noisy.tif", "--kind", "gaussian_noise")
    try:
        assert main(["degrade", str(scene), str(out_dir / "other.tif"), "--kind", "stripes"]) == 0
        assert temp in os.listdir(out_dir)
    finally:
        child.stdin.write("\n")
        child.stdin.flush()
        child.communicate(timeout=120)
    assert child.returncode == 0
    assert sorted(os.listdir(out_dir)) == ["noisy.tif", "other.tif"]
