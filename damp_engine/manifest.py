"""The manifest of a batch (JSON lines, one record per scene event) and the facts about files it
records (size, modification time, SHA-256), by which a rerun tells a complete scene from one to redo."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DampInputError

if TYPE_CHECKING:
    from .batch_scenes import SceneJob

try:
    import fcntl  # the manifest's lock; Windows has no fcntl and goes without
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST_NAME = "manifest.jsonl"
HASH_CHUNK = 8 << 20


def file_stat(path: Path) -> tuple[int, int]:
    """(size, modification time in ns) of a file, (-1, -1) when it cannot be read."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_facts(path: str) -> dict:
    """{"size", "mtime_ns", "sha256"} of a local file; of a GDAL virtual file, size and time only
    (reading a remote scene twice to hash it would double the transfer)."""
    if path.startswith("/vsi"):
        from osgeo import gdal

        st = gdal.VSIStatL(path)
        return {"size": st.size, "mtime_ns": int(st.mtime) * 10**9, "sha256": None} if st else {}
    size, mtime = file_stat(Path(path))
    return {"size": size, "mtime_ns": mtime, "sha256": file_sha256(Path(path))}


def raster_files(path: str) -> list[str]:
    """The files that make up a raster (e.g. an ENVI cube and its .hdr), the main one first."""
    from osgeo import gdal

    ds = gdal.Open(path)
    try:
        files = ds.GetFileList() or [path]
    finally:
        ds = None
    main = [path] if not path.startswith("/vsi") else []
    return list(dict.fromkeys(main + [f for f in files if not f.endswith(".aux.xml")]))


def _same_file(path: str, facts: dict) -> bool:
    """True when `path` is still the file `facts` describe: same size and time, or same size and
    SHA-256 (a copy of the file that kept its content but not its time)."""
    if path.startswith("/vsi"):
        return file_facts(path) == facts
    size, mtime = file_stat(Path(path))
    if size != facts.get("size"):
        return False
    if mtime == facts.get("mtime_ns"):
        return True
    return facts.get("sha256") is not None and file_sha256(Path(path)) == facts["sha256"]


# --- the manifest -------------------------------------------------------------------------------

class Manifest:
    """A JSON-lines record of a batch: one line per scene event ("done", "failed", "cancelled").

    Lines are appended and flushed to disk one at a time; the last line of a scene says where it
    stands. A line cut short by a crash is ignored on reading. While a batch runs it holds an
    exclusive lock on the file, so two batches cannot write one manifest.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().resolve()
        self._fh = None

    def read(self) -> dict[str, dict]:
        """{scene: its last record}."""
        last: dict[str, dict] = {}
        if not self.path.is_file():
            return last
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "scene" in record:
                last[record["scene"]] = record
        return last

    def __enter__(self) -> "Manifest":
        if not self.path.parent.is_dir():
            raise DampInputError(f"The manifest's folder {self.path.parent} does not exist; create it first.")
        self._fh = open(self.path, "a", encoding="utf-8")
        try:
            if fcntl is not None:
                fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.close()
            raise DampInputError(f"Another batch is writing {self.path}; wait for it to finish or give "
                                 "another --manifest.") from None
        if self._fh.tell() and not self.path.read_bytes().endswith(b"\n"):
            self._fh.write("\n")  # end a line cut short by a crash, so the next record starts clean
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()
        self._fh = None

    def append(self, record: dict) -> None:
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


def is_complete(record: dict | None, job: SceneJob, settings: dict) -> bool:
    """True when the manifest's last record of the scene says it is done with these settings and
    its input and outputs are the files it records."""
    if not record or record.get("state") != "done" or record.get("output") != job.output:
        return False
    if record.get("settings") != settings:
        return False
    files = {**record.get("inputs", {}), **record.get("outputs", {})}
    return bool(record.get("outputs")) and all(_same_file(path, facts) for path, facts in files.items())
