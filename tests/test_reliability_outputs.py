"""A run's outputs appear together or not at all; temporary files carry their writer's pid, and a
later run removes those of dead processes (and puts a previous file back if a run died swapping)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import smooth_cube, write_raster

from damp_engine.errors import DampInputError
from damp_engine.outputs import (OutputGroup, check_output_file, commit_together, pid_alive, remove_stale_files,
                                 temp_path)
from damp_engine.raster import RasterWriter, open_raster


def names(folder) -> list[str]:
    """Every entry of `folder`, hidden ones included, sorted."""
    return sorted(os.listdir(folder))


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def like(tmp_path):
    return open_raster(write_raster(tmp_path / "like.tif", smooth_cube(3, 8, 8)))


def test_temp_name_is_hidden_and_records_the_pid(tmp_path):
    name = temp_path(tmp_path / "restored.tif").name
    assert name.startswith(".restored.") and name.endswith(".part.tif")
    assert f".{os.getpid()}." in name


def test_group_writes_nothing_until_it_ends(tmp_path, like):
    with OutputGroup() as group:
        writer = group.enter_context(RasterWriter(tmp_path / "a.tif", like))
        writer.write(np.ones((3, 8, 8), np.float32), 0, 0)
        group.add_json(tmp_path / "r.json", {"ok": True})
        assert not (tmp_path / "a.tif").exists() and not (tmp_path / "r.json").exists()
    assert names(tmp_path) == ["a.tif", "like.tif", "r.json"]


def test_failed_group_leaves_nothing_and_keeps_previous_files(tmp_path, like):
    previous = write_raster(tmp_path / "a.tif", smooth_cube(3, 8, 8, seed=5))
    before = previous.read_bytes()
    with pytest.raises(RuntimeError, match="stop"):
        with OutputGroup() as group:
            group.enter_context(RasterWriter(tmp_path / "a.tif", like)).write(np.ones((3, 8, 8), np.float32), 0, 0)
            group.add_json(tmp_path / "r.json", {"ok": True})
            raise RuntimeError("stop")
    assert names(tmp_path) == ["a.tif", "like.tif"]
    assert previous.read_bytes() == before


def test_a_move_that_fails_puts_every_destination_back(tmp_path, like, monkeypatch):
    """The second output cannot be moved into place: the first, already moved, is taken back."""
    import damp_engine.outputs as outputs

    old_a = write_raster(tmp_path / "a.tif", smooth_cube(3, 8, 8, seed=5)).read_bytes()
    (tmp_path / "r.json").write_text("previous report")
    real_move = outputs.move_file_set

    def move(src, dst):
        if dst == (tmp_path / "r.json").resolve() and ".part" in src.name:
            raise OSError(28, "No space left on device")
        real_move(src, dst)

    monkeypatch.setattr(outputs, "move_file_set", move)
    writer = RasterWriter(tmp_path / "a.tif", like)
    writer.write(np.ones((3, 8, 8), np.float32), 0, 0)
    report = outputs.JsonOutput(tmp_path / "r.json", {"new": True})
    with pytest.raises(DampInputError, match=r"r\.json .*no space left on device.*unchanged"):
        commit_together([writer, report])
    assert names(tmp_path) == ["a.tif", "like.tif", "r.json"]
    assert (tmp_path / "a.tif").read_bytes() == old_a
    assert (tmp_path / "r.json").read_text() == "previous report"


def test_envi_output_replaces_header_and_data_together(tmp_path, like):
    for value in (1.0, 2.0):
        with RasterWriter(tmp_path / "a.bsq", like) as writer:
            writer.write(np.full((3, 8, 8), value, np.float32), 0, 0)
    assert {"a.bsq", "a.hdr"} <= set(names(tmp_path))
    assert not [name for name in names(tmp_path) if name.startswith(".")]
    from damp_engine.raster import RasterReader

    with RasterReader(tmp_path / "a.bsq") as reader:
        assert float(reader.read_all()[0].max()) == 2.0


def test_pid_alive_tells_dead_from_living():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    pid = dead_pid()
    stale = [tmp_path / f".out.{pid}.0badf00d.part.tif", tmp_path / f".out.{pid}.0badf00d.part.tif.aux.xml",
             tmp_path / f".report.{pid}.deadbeef.part.json"]
    for path in stale:
        path.write_bytes(b"")
    mine = tmp_path / f".out.{os.getpid()}.12345678.part.tif"
    mine.write_bytes(b"")
    lookalike = tmp_path / ".out.12.notmine.part.tif"
    lookalike.write_bytes(b"")
    removed = remove_stale_files(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert names(tmp_path) == sorted([mine.name, lookalike.name])


def test_stale_backup_is_put_back_when_its_destination_is_missing(tmp_path):
    pid = dead_pid()
    backup = tmp_path / f".report.{pid}.0badf00d.old.json"
    backup.write_text("the user's previous report")
    remove_stale_files(tmp_path)
    assert names(tmp_path) == ["report.json"]
    assert (tmp_path / "report.json").read_text() == "the user's previous report"


def test_stale_backup_is_deleted_when_its_destination_exists(tmp_path):
    pid = dead_pid()
    (tmp_path / f".report.{pid}.0badf00d.old.json").write_text("older")
    (tmp_path / "report.json").write_text("newer")
    remove_stale_files(tmp_path)
    assert names(tmp_path) == ["report.json"]
    assert (tmp_path / "report.json").read_text() == "newer"


def test_report_path_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(DampInputError, match="is a folder"):
        check_output_file(tmp_path, "report")


def test_report_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(DampInputError, match="does not exist"):
        check_output_file(tmp_path / "nope" / "r.json", "report")


def test_checking_an_output_cleans_its_folder(tmp_path):
    stale = tmp_path / f".r.{dead_pid()}.0badf00d.part.json"
    stale.write_text("{")
    check_output_file(tmp_path / "r.json", "report")
    assert names(tmp_path) == []


def test_a_damaged_raster_at_the_destination_is_replaced(tmp_path, like):
    whole = write_raster(tmp_path / "a.tif", smooth_cube(3, 8, 8, seed=5)).read_bytes()
    (tmp_path / "a.tif").write_bytes(whole[:200])  # its header survives, its data does not
    with RasterWriter(tmp_path / "a.tif", like) as writer:
        writer.write(np.full((3, 8, 8), 7.0, np.float32), 0, 0)
    assert names(tmp_path) == ["a.tif", "like.tif"]
    from damp_engine.raster import RasterReader

    with RasterReader(tmp_path / "a.tif") as reader:
        assert float(reader.read_all()[0].min()) == 7.0
