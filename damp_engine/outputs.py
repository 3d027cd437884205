"""Output files that appear together or not at all, under temporary names that no run leaves behind.

Every file the engine writes is first written beside its destination under a hidden temporary
name that records the writing process::

    .NAME.PID.TAG.part.EXT     the file being written (TAG: 8 random hex digits)
    .NAME.PID.TAG.old.EXT      the previous file at the destination, kept while outputs are swapped
    .damp-probe.PID.TAG.probe  the probe that checks that a folder is writable

`OutputGroup` collects the outputs of one run (rasters, a JSON report) and moves them onto their
destinations only when the run has succeeded: the previous file at each destination is first
moved aside, and if any move fails, every destination is put back as it was. A run that fails,
is cancelled or is interrupted (SIGINT, SIGTERM) deletes its temporary files; one that is killed
(SIGKILL, a power cut) cannot, so `remove_stale_files` deletes the temporary files of processes
that are no longer running, and puts a stale `.old` file back when its destination is missing.
The engine calls it for the folder of every output it checks.

The process id is that of the local machine: two machines writing into one shared folder at the
same time could mistake each other's temporary files for stale ones.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Callable, Iterable, Protocol

from .errors import DampInputError, problem_of, write_error

TEMP_KINDS = ("part", "old", "probe")
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<tag>[0-9a-f]{8})\.(?P<kind>part|old|probe)(?P<rest>.*)$")


# --- temporary names and stale files ---------------------------------------------------------

def temp_path(path: str | os.PathLike, kind: str = "part") -> Path:
    """A fresh hidden name beside `path` for this process: ``.STEM.PID.TAG.KIND.SUFFIX``."""
    path = Path(path)
    if kind not in TEMP_KINDS:
        raise ValueError(f"kind must be one of {TEMP_KINDS}, not {kind!r}")
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{kind}{path.suffix}")


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary)`` for a fresh `temp_path` beside `path`, then move it onto `path`.

    The one atomic write of a single file (model weights and cards, optimiser states): on any
    failure the previous file at `path` is untouched and the temporary file is removed (or, if
    the process is killed, by the next run's `remove_stale_files`). Returns `path`.
    """
    path = Path(path)
    temp = temp_path(path)
    try:
        write(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return path


def pid_alive(pid: int) -> bool:
    """True unless process `pid` certainly no longer runs on this machine (unsure counts as alive)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to another user
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return ctypes.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def remove_stale_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files in `folder` whose writing process no longer runs; return them.

    A stale ``.old`` file whose destination is missing (its run was killed while swapping
    outputs) is moved back onto the destination instead. Files of live processes, and files
    that merely look similar, are left alone.
    """
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    groups: dict[str, list[re.Match]] = {}
    for name in names:
        match = _TEMP_NAME.match(name)
        if match and not pid_alive(int(match["pid"])):
            groups.setdefault(f".{match['name']}.{match['pid']}.{match['tag']}.{match['kind']}", []).append(match)
    handled = []
    for matches in groups.values():
        if matches[0]["kind"] == "old":
            # the file itself is the one GDAL reads (a raster) or the shortest name; the rest are side-cars
            main = next((m for m in matches if _raster_driver(folder / m.string)), None) \
                or min(matches, key=lambda m: len(m.string))
            destination = folder / f"{main['name']}{main['rest']}"
            if not os.path.lexists(destination):
                try:
                    move_file_set(folder / main.string, destination)
                    handled.append(folder / main.string)
                except (OSError, RuntimeError):
                    pass  # leave it for the user: it holds their previous file
                continue
        for match in matches:
            try:
                (folder / match.string).unlink()
                handled.append(folder / match.string)
            except OSError:
                pass
    return handled


# --- moving and deleting a file with its side-cars -------------------------------------------

def _raster_driver(path: Path):
    """The GDAL raster driver that recognises `path`, or None for other files."""
    from osgeo import gdal

    try:
        return gdal.IdentifyDriverEx(str(path), gdal.OF_RASTER)
    except RuntimeError:
        return None


def move_file_set(src: Path, dst: Path) -> None:
    """Move `src` onto `dst` (which must not exist), with its side-cars when it is a raster
    (ENVI .hdr, .aux.xml); raises OSError or RuntimeError (GDAL) when that fails."""
    driver = _raster_driver(src)
    if driver is not None:
        try:
            driver.Rename(str(dst), str(src))
            return
        except RuntimeError:  # a damaged raster GDAL cannot open to list its files: move the file itself
            pass
    os.replace(src, dst)


def delete_file_set(path: Path) -> None:
    """Delete `path` and every file whose name starts with its stem and a dot (its side-cars)."""
    path = Path(path)
    if path.name.startswith(".") and _TEMP_NAME.match(path.name):
        match = _TEMP_NAME.match(path.name)
        prefix = f".{match['name']}.{match['pid']}.{match['tag']}.{match['kind']}"
        for other in list(path.parent.glob(glob_escape(prefix) + "*")):
            other.unlink(missing_ok=True)
        return
    driver = _raster_driver(path)
    if driver is not None:
        try:
            driver.Delete(str(path))
            return
        except RuntimeError:
            pass
    path.unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    """`text` with glob's special characters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# --- pre-flight checks -----------------------------------------------------------------------

def check_writable_folder(folder: Path, output: str | os.PathLike) -> None:
    """DampInputError naming `output` unless a file can really be created in `folder`.

    ``os.access`` alone is not enough (it says yes to root on a read-only mount, and some
    network file systems answer wrongly), so a probe file is created and deleted as well.
    """
    problem = None
    if not os.access(folder, os.W_OK | os.X_OK):
        problem = "permission denied"
    else:
        probe = temp_path(folder / "damp-probe", "probe")
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as exc:
            problem = (exc.strerror or str(exc)).lower()
        else:
            probe.unlink(missing_ok=True)
    if problem:
        raise DampInputError(f"Cannot write {output}: the folder {folder} is not writable ({problem}); "
                             "choose an output folder you can write to.")


def check_output_file(path: str | os.PathLike, what: str = "output file",
                      inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """The resolved path of a non-raster output (e.g. a JSON report), checked before any work:
    not an input, not a folder, in an existing folder that can be written to.

    Stale temporary files in that folder are removed (see the module docstring).
    """
    out = Path(path).expanduser().resolve()
    for src in inputs:
        if src is not None and Path(src).expanduser().resolve() == out:
            raise DampInputError(f"The {what} {path} is an input file; choose another path "
                                 "(inputs are never overwritten).")
    if out.is_dir():
        raise DampInputError(f"The {what} {path} is a folder; give a file name in it, e.g. {out / 'report.json'}.")
    if not out.parent.is_dir():
        raise DampInputError(f"The {what}'s folder {out.parent} does not exist; create it first.")
    if os.path.lexists(out) and not out.is_file():
        raise DampInputError(f"The {what} {path} exists and is not a regular file; choose another name.")
    check_writable_folder(out.parent, path)
    remove_stale_files(out.parent)
    return out


# --- committing outputs together -------------------------------------------------------------

class Staged(Protocol):
    """An output written to `temp` that belongs at `path` once the run succeeds."""

    path: Path
    temp: Path

    def finish(self) -> None:
        """Complete and close the temporary file (raises DampInputError if that fails)."""

    def discard(self) -> None:
        """Delete the temporary file and its side-cars; never raises."""


class JsonOutput:
    """A JSON document staged as an output (written to its temporary file at once)."""

    def __init__(self, path: str | os.PathLike, data: dict):
        self.path = Path(path).expanduser().resolve()
        self.temp = temp_path(self.path)
        try:
            self.temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            self.discard()
            raise write_error(self.path, exc, self.temp) from None

    def finish(self) -> None:
        pass

    def discard(self) -> None:
        try:
            self.temp.unlink(missing_ok=True)
        except OSError:
            pass


def commit_together(items: list[Staged]) -> list[Path]:
    """Move every staged output onto its destination, all or none; return the destinations.

    The previous file at a destination is moved aside first and deleted only once every output
    is in place; if a move fails (or the process is interrupted meanwhile), the outputs already
    moved are deleted, the previous files put back, and DampInputError names the destination.
    """
    try:
        for item in items:
            item.finish()
    except BaseException:
        for item in items:
            item.discard()
        raise
    placed: list[Staged] = []
    backups: list[tuple[Path, Path]] = []
    current = None
    try:
        for item in items:
            current = item.path
            if os.path.lexists(item.path):
                backup = temp_path(item.path, "old")
                move_file_set(item.path, backup)
                backups.append((item.path, backup))
            move_file_set(item.temp, item.path)
            placed.append(item)
    except BaseException as exc:
        _roll_back(items, placed, backups)
        if isinstance(exc, (OSError, RuntimeError)):
            raise DampInputError(f"Cannot move the finished output into place at {current} ({problem_of(exc)}); "
                                 "no output was written and existing files are unchanged.") from None
        raise
    for _, backup in backups:
        try:
            delete_file_set(backup)
        except (OSError, RuntimeError):
            pass
    return [item.path for item in items]


def _roll_back(items: list[Staged], placed: list[Staged], backups: list[tuple[Path, Path]]) -> None:
    """Undo a partial swap: delete the new outputs, put the previous files back, drop the temps."""
    for item in reversed(placed):
        try:
            delete_file_set(item.path)
        except (OSError, RuntimeError):
            pass
    for destination, backup in reversed(backups):
        try:
            move_file_set(backup, destination)
        except (OSError, RuntimeError):
            pass  # the .old file stays; remove_stale_files puts it back later
    for item in items:
        item.discard()


class OutputGroup:
    """The outputs of one run, committed together when the `with` block ends without an exception.

    ``enter_context(writer)`` stages a RasterWriter (so a group can stand where an ExitStack of
    writers did); ``add_json(path, data)`` stages a JSON file. On an exception every staged
    output is discarded and the destinations are not touched.
    """

    def __init__(self) -> None:
        self.items: list[Staged] = []

    def enter_context(self, item: Staged) -> Staged:
        self.items.append(item)
        return item

    def add_json(self, path: str | os.PathLike, data: dict) -> JsonOutput:
        return self.enter_context(JsonOutput(path, data))

    def __enter__(self) -> "OutputGroup":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            commit_together(self.items)
        else:
            for item in self.items:
                item.discard()
