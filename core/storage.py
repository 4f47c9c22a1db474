"""Where run files live (a local folder or a pyarrow filesystem URI) and atomic writes there.

A :class:`Location` is a local path (``runs/super1``) or a URI (``s3://bucket/runs/super1``,
``gs://...``, ``file:///mnt/runs/super1``). ``/`` joins names without pathlib's collapsing of
``//`` and keeps a URI's query (``?endpoint_override=...``) last. Its filesystem is resolved
once, with ``pyarrow.fs.FileSystem.from_uri`` (``LocalFileSystem`` for plain paths), and is
shared by every location joined from it.

Writes are atomic, so that a reader (a report, a resumed sweep, a trial on another node) sees
the complete old file or the complete new one, never a torn one:

- local disks (plain paths, ``file://``): a temporary file in the same folder, fsync, rename;
- object stores (S3, GCS): the complete bytes, serialized in memory first, in one upload. An
  object becomes visible only when its upload completes, and a rename there would be a copy
  plus a delete (not atomic), so one upload is the atomic write;
- other filesystems (HDFS, ...): a temporary file beside the target, then ``move``.

Every failure is a :class:`~core.errors.StorageError`: one line naming the location, what
failed and how to fix it.

Example::

    run = Location.parse("s3://bucket/runs") / "super1"
    (run / "run.json").write_bytes(b"{}")
    table = (run / "trials.parquet").read_table()
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core.errors import StorageError

URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
OBJECT_STORES = ("s3", "gcs")  # pyarrow type names whose uploads are atomic per object
READ_ATTEMPTS = 4  # reads of a Parquet object being replaced (see Location.read_table)
S3_HINT = (
    "check the bucket name and the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE or the instance profile; AWS_ENDPOINT_URL for S3-compatible stores)"
)
HINT = "check the path or URI and that this machine may read and write there"


@dataclass(frozen=True)
class Location:
    """A folder or file on a local disk or a pyarrow filesystem; ``str()`` is what was given."""

    text: str
    _resolved: tuple[pafs.FileSystem, str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | Location) -> Location:
        """A location from a path or URI (``~`` expanded in paths; URIs kept as given)."""
        if isinstance(value, Location):
            return value
        text = os.fspath(value)
        return cls(text if is_uri(text) else os.path.expanduser(text))

    @classmethod
    def on(cls, fs: pafs.FileSystem, path: str) -> Location:
        """A location on a filesystem resolved elsewhere (Ray's storage filesystem and a path
        on it, as a trial sees its folder); ``str()`` names it as ``type://path``."""
        local = isinstance(fs, pafs.LocalFileSystem)
        return cls(path if local else f"{fs.type_name}://{path}", (fs, path.rstrip("/") or "/"))

    @property
    def is_uri(self) -> bool:
        return is_uri(self.text)

    @property
    def name(self) -> str:
        path = urlsplit(self.text).path if self.is_uri else self.text
        return path.rstrip("/").rsplit("/", 1)[-1]

    def absolute(self) -> Location:
        """Local paths made absolute (from the working directory); URIs unchanged."""
        return self if self.is_uri else Location(str(Path(self.text).resolve()))

    def __str__(self) -> str:
        return self.text

    def __fspath__(self) -> str:
        if self.is_uri:
            raise TypeError(f"{self.text!r} is a URI, not a local path")
        return self.text

    def __truediv__(self, name: str) -> Location:
        name = str(name).strip("/")
        resolved = self._resolved and (self._resolved[0], f"{self._resolved[1]}/{name}")
        if not self.is_uri:
            return Location(str(Path(self.text) / name), resolved)
        parts = urlsplit(self.text)
        joined = urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{name}"))
        return Location(joined, resolved)

    # ------------------------------------------------------------------ the filesystem
    def resolve(self) -> tuple[pafs.FileSystem, str]:
        """``(filesystem, path on it)``, resolved once (S3 asks the bucket's region)."""
        if self._resolved is None:
            with self._errors("open", also=(pa.ArrowInvalid, pa.ArrowNotImplementedError)):
                if self.is_uri:
                    fs, path = pafs.FileSystem.from_uri(self.text)
                else:
                    fs, path = pafs.LocalFileSystem(), str(Path(self.text).resolve())
            object.__setattr__(self, "_resolved", (fs, path.rstrip("/") or "/"))
        return self._resolved  # type: ignore[return-value]

    @property
    def fs_path(self) -> str:
        return self.resolve()[1]

    def relative(self, fs_path: str) -> str:
        """``fs_path`` (a path on this location's filesystem) relative to this folder, or
        unchanged when it lies elsewhere."""
        root = self.fs_path
        return fs_path[len(root) + 1 :] if fs_path.startswith(root + "/") else fs_path

    # ------------------------------------------------------------------ reading
    def _type(self) -> pafs.FileType:
        fs, path = self.resolve()
        with self._errors("look up"):
            return fs.get_file_info(path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def size(self) -> int | None:
        """The file's size in bytes; None when there is no file here."""
        fs, path = self.resolve()
        with self._errors("look up"):
            info = fs.get_file_info(path)
        return info.size if info.type == pafs.FileType.File else None

    def read_bytes(self) -> bytes:
        fs, path = self.resolve()
        with self._errors("read"), fs.open_input_stream(path) as fh:
            return fh.read()

    def read_table(self, columns: list[str] | None = None) -> pa.Table:
        """The Parquet table; a damaged file raises ``pyarrow.ArrowInvalid`` (not reachability).

        On object stores a read that overlaps a replacement of the object can mix two versions
        (pyarrow asks the size, then reads ranges), which fails to parse: it is read again,
        up to ``READ_ATTEMPTS`` times."""
        fs, path = self.resolve()
        attempts = READ_ATTEMPTS if fs.type_name in OBJECT_STORES else 1
        for attempt in range(1, attempts):
            try:
                return self._read_table_once(fs, path, columns)
            except (StorageError, pa.ArrowInvalid):
                time.sleep(0.2 * attempt)
        return self._read_table_once(fs, path, columns)

    def _read_table_once(
        self, fs: pafs.FileSystem, path: str, columns: list[str] | None
    ) -> pa.Table:
        with self._errors("read"):
            if isinstance(fs, pafs.LocalFileSystem):  # one open file: one version, even while
                with fs.open_input_file(path) as f:  # a writer replaces it (pq opens it twice)
                    return pq.read_table(f, columns=columns)
            return pq.read_table(path, filesystem=fs, columns=columns)

    def glob(self, pattern: str) -> list[Location]:
        """Entries directly in this folder whose names match ``pattern``, sorted by name."""
        fs, path = self.resolve()
        with self._errors("list"):
            infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        names = sorted(i.base_name for i in infos if fnmatch.fnmatchcase(i.base_name, pattern))
        return [self / n for n in names]

    def files(self) -> dict[str, int]:
        """Every file below this folder, recursively: ``{path relative to it: size in bytes}``
        (empty when there is no folder here)."""
        fs, path = self.resolve()
        with self._errors("list"):
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        return {
            i.path[len(path) + 1 :]: int(i.size or 0) for i in infos if i.type == pafs.FileType.File
        }

    # ------------------------------------------------------------------ writing
    def delete(self) -> None:
        """Remove this file, or this folder with everything in it; nothing here is no error."""
        fs, path = self.resolve()
        with self._errors("delete"):
            found = fs.get_file_info(path).type
            if found == pafs.FileType.Directory:
                fs.delete_dir(path)
            elif found != pafs.FileType.NotFound:
                fs.delete_file(path)

    def make_dir(self) -> None:
        """Create this folder (and its parents); on object stores this writes a marker, so
        it also proves that the location is writable."""
        fs, path = self.resolve()
        with self._errors("create the folder"):
            fs.create_dir(path, recursive=True)

    def check_writable(self) -> None:
        """Create this folder and prove that files can be written in it (a probe file written,
        then deleted): a read-only mount or bucket fails here, in one line, not mid-sweep."""
        self.make_dir()
        fs, path = self.resolve()
        probe = f"{path}/.microsweep-probe-{os.getpid()}"
        with self._errors("write in the folder"):
            with fs.open_output_stream(probe):
                pass
            fs.delete_file(probe)

    def write_bytes(self, data: bytes) -> None:
        """Replace this file atomically (see the module docstring for how, per filesystem)."""
        fs, path = self.resolve()
        with self._errors("write"):
            if isinstance(fs, pafs.LocalFileSystem):
                _replace_local(Path(path), data)
            elif fs.type_name in OBJECT_STORES:
                with fs.open_output_stream(path) as out:
                    out.write(data)
            else:
                _replace_via_move(fs, path, data)

    @contextlib.contextmanager
    def _errors(self, what: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
        try:
            yield
        except (OSError, *also) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            first = first.split(" To create buckets")[0]  # pyarrow's advice; not ours to give
            hint = S3_HINT if self.text.startswith("s3://") else HINT
            raise StorageError(f"storage '{self.text}': cannot {what}: {first}; {hint}") from None


def local_path(text: str | os.PathLike[str], base_dir: str | os.PathLike[str]) -> Path:
    """A folder or file an experiment file names: ``~`` expanded, relative to the file's folder."""
    return (Path(base_dir) / Path(text).expanduser()).resolve()


def is_uri(text: str) -> bool:
    return bool(URI_RE.match(text))


def _replace_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _replace_via_move(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    parent, _, name = path.rpartition("/")
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp)
        raise


def write_bytes(path: str | os.PathLike[str] | Location, data: bytes) -> None:
    """Replace ``path`` (a local path or a URI) atomically: readers see the old or the new file."""
    Location.parse(path).write_bytes(data)


def write_json(
    path: str | os.PathLike[str] | Location, data: Any, *, sort_keys: bool = True
) -> None:
    """``data`` as indented JSON, its keys sorted unless ``sort_keys`` is False, written
    atomically."""
    payload = (json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n").encode()
    write_bytes(path, payload)


def write_parquet(path: str | os.PathLike[str] | Location, table: pa.Table) -> None:
    """``table`` as Parquet, serialized in memory, then written atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes(path, sink.getvalue().to_pybytes())
