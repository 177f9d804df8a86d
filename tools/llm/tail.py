"""Read only what was appended to a JSON-lines file since the last sweep, a chunk at a time.

A watermark is a byte offset plus the file's identity (device, inode, a hash of its first bytes),
so a sweep resumes where the last one stopped, a rotated-then-renamed file keeps its place, and a
truncated or replaced file is read again from the start. Offsets of `.gz` files count
decompressed bytes (appended gzip members are read; a rewritten archive starts over). Only whole
lines are taken: a line still being written (no newline yet and not valid JSON) waits for the
next sweep. Each chunk is bounded in size, which bounds the memory of one ingest step.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HEAD = 4096  # bytes hashed to recognise a file whose inode was reused or whose start was rewritten
CHUNK = 128 * 1024 * 1024  # bytes of lines per ingest step (bounds the batch DuckDB holds)


@dataclass(frozen=True)
class FileMark:
    """Where reading of one file stopped, and what the file was then."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    offset: int  # bytes consumed (decompressed for .gz)
    head: str  # sha1 of the first min(offset, HEAD) bytes


@dataclass(frozen=True)
class Chunk:
    """Whole lines [start, end) of `source`, readable by DuckDB at `path` (the file itself or a copy)."""

    source: str
    path: str
    start: int
    end: int


def _open(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115


def head_hash(path: str, length: int) -> str:
    with _open(path) as fh:
        return hashlib.sha1(fh.read(min(length, HEAD))).hexdigest()


def resume_offset(path: str, st: os.stat_result, mark: FileMark | None) -> int:
    """The offset to read `path` from: the mark's, when the mark is still this file."""
    if mark is None or (mark.dev, mark.ino) != (st.st_dev, st.st_ino):
        return 0
    if not path.endswith(".gz") and st.st_size < mark.offset:
        return 0  # truncated (copytruncate rotation): a new file under the same inode
    try:
        return mark.offset if head_hash(path, mark.offset) == mark.head else 0
    except (OSError, EOFError):
        return 0


def unchanged(st: os.stat_result, mark: FileMark | None) -> bool:
    return mark is not None and (mark.dev, mark.ino, mark.size, mark.mtime_ns) == (
        st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _complete_tail(tail: bytes) -> bool:
    """A last line without its newline counts when it is a whole JSON value (a writer that never
    ends the file with a newline); otherwise it is still being written."""
    try:
        json.loads(tail)
        return True
    except ValueError:
        return False


def chunks(path: str, offset: int, workdir: str, chunk: int = CHUNK) -> Iterator[Chunk]:
    """Chunks of the whole lines after `offset`. A plain file read whole in one chunk is read in place;
    anything else is copied to `workdir` (each copy is replaced by the next)."""
    size = os.path.getsize(path)
    gz = path.endswith(".gz")
    if not gz and offset == 0 and size <= chunk:
        with open(path, "rb") as fh:
            data_end = _whole_end(fh, size)
        if data_end == size:
            if size:
                yield Chunk(path, path, 0, size)
            return
    with _open(path) as fh:
        _skip(fh, offset, gz)
        pos, pending, eof = offset, b"", False
        while not eof:
            copy = os.path.join(workdir, "chunk.jsonl")
            n, tail = 0, b""  # bytes copied; the bytes after the last newline copied
            with open(copy, "wb") as out:  # in 1 MB pieces: memory stays flat whatever the chunk size
                while True:
                    block, pending = pending or fh.read(1 << 20), b""
                    if not block:
                        eof = True
                        break
                    if n + len(block) >= chunk:
                        cut = block.find(b"\n", max(0, chunk - n)) + 1
                        if cut:
                            out.write(block[:cut])
                            n, tail, pending = n + cut, b"", block[cut:]
                            break
                    out.write(block)
                    n += len(block)
                    nl = block.rfind(b"\n")
                    tail = block[nl + 1:] if nl >= 0 else tail + block
                if eof and tail and not _complete_tail(tail):
                    n -= len(tail)  # a line still being written: left for the next sweep
                    out.truncate(n)
            if n:
                yield Chunk(path, copy, pos, pos + n)
                pos += n


def _skip(fh: IO[bytes], offset: int, gz: bool) -> None:
    if not gz:
        fh.seek(offset)
        return
    left = offset
    while left > 0:
        got = len(fh.read(min(left, 1 << 24)))
        if not got:
            return
        left -= got


def _whole_end(fh: IO[bytes], size: int) -> int:
    """The end of the last whole line of a plain file."""
    if size == 0:
        return 0
    back = min(size, 1 << 20)
    fh.seek(size - back)
    tail = fh.read(back)
    if tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n") + 1
    return size if _complete_tail(tail[cut:]) else size - back + cut


def lines_before(path: str, offset: int) -> int:
    """Lines before byte `offset` (for error messages that name a line of the original file)."""
    n, left = 0, offset
    with _open(path) as fh:
        while left > 0:
            block = fh.read(min(left, 1 << 24))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    return n


def make_workdir() -> str:
    return tempfile.mkdtemp(prefix="costwarden-usage-")


def remove_workdir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def mark_after(path: str, st: os.stat_result, offset: int) -> FileMark:
    return FileMark(str(Path(path)), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, offset,
                    head_hash(path, offset))
