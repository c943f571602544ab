"""The files long jobs write (export NDJSON, batch results) in the `jobs` storage: the file system under ./var, or an
S3-compatible object store (settings.STORAGES["jobs"]). Files are written line by line to a local temporary file and
then moved or uploaded whole under their final name, so a reader never sees half a file and a chunk that runs again
replaces its own files. Reading streams: a file is never held in memory whole."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

READ_BLOCK = 256 * 1024
# Lines are written through a buffer of this size: with the default 8 KB, an ADT Bundle's 16 KB line and its newline
# were two write() calls each (0.011 ms a line against 0.0045, 2,000 lines, load 13).
WRITE_BUFFER = 1024 * 1024


def job_storage() -> Storage:
    return storages["jobs"]


@dataclass
class WrittenFile:
    name: str
    count: int  # lines
    bytes: int


class LineFiles:
    """Writes NDJSON lines into parts `<stem>.ndjson`, `<stem>-2.ndjson`, … of at most `max_lines` lines and
    `max_bytes` bytes each; `close()` stores them and returns what was written (nothing when no line was)."""

    def __init__(self, stem: str, *, max_lines: int, max_bytes: int) -> None:
        self.stem, self.max_lines, self.max_bytes = stem, max_lines, max_bytes
        self.written: list[WrittenFile] = []
        self._file: BinaryIO | None = None
        self._lines = self._bytes = 0

    def write(self, line: bytes) -> None:
        size = len(line) + 1
        if self._file is not None and (self._lines >= self.max_lines or self._bytes + size > self.max_bytes):
            self._store()
        if self._file is None:
            # Open across many write() calls, closed by _store(); beside the files when they are local, so the
            # final move is a rename.
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115
                prefix="part-", suffix=".ndjson", delete=False, dir=_scratch_dir(), buffering=WRITE_BUFFER
            )
        self._file.write(line)
        self._file.write(b"\n")
        self._lines += 1
        self._bytes += size

    def write_all(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> list[WrittenFile]:
        if self._file is not None:
            self._store()
        return self.written

    def discard(self) -> None:
        """Drop the open part. It is removed even when closing it fails (a full disk cannot flush); that error is
        raised after."""
        if self._file is not None:
            part, self._file = self._file, None
            try:
                part.close()
            finally:
                os.unlink(part.name)

    def _store(self) -> None:
        part = len(self.written) + 1
        name = f"{self.stem}.ndjson" if part == 1 else f"{self.stem}-{part}.ndjson"
        assert self._file is not None
        self._file.close()
        try:
            store_file(name, Path(self._file.name))
        finally:
            if os.path.exists(self._file.name):
                os.unlink(self._file.name)
        self.written.append(WrittenFile(name, self._lines, self._bytes))
        self._file, self._lines, self._bytes = None, 0, 0


def _scratch_dir() -> str | None:
    storage = job_storage()
    if not isinstance(storage, FileSystemStorage):
        return None  # the system's temporary directory
    scratch = Path(storage.location) / ".scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return str(scratch)


def store_file(name: str, local: Path) -> None:
    """Put a finished local file under `name`, replacing what is there (a rerun of the same chunk)."""
    storage = job_storage()
    if isinstance(storage, FileSystemStorage):
        target = Path(storage.path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, target)  # atomic on one file system; a copy otherwise
        return
    with local.open("rb") as handle:
        storage.save(name, File(handle, name=name))


def open_file(name: str) -> BinaryIO:
    """A file object to stream a stored file from (FileResponse reads it block by block)."""
    storage = job_storage()
    bucket = getattr(storage, "bucket", None)
    if bucket is not None:  # S3: the object's body streams from the store; S3File would spool it whole first
        return bucket.Object(storage._normalize_name(name)).get()["Body"]
    return storage.open(name, "rb")


def read_lines(name: str) -> Iterator[bytes]:
    """The lines of a stored NDJSON file, streamed."""
    with open_file(name) as handle:
        rest = b""
        while block := handle.read(READ_BLOCK):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from (line for line in lines if line)
        if rest:
            yield rest


def file_exists(name: str) -> bool:
    return job_storage().exists(name)


def delete_files(names: Iterable[str]) -> int:
    storage, deleted = job_storage(), 0
    for name in names:
        storage.delete(name)  # FileSystemStorage and S3Storage both ignore a name that is gone
        deleted += 1
    return deleted
