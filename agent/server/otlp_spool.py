"""The receiver's spool: hourly JSON-lines files under <state_dir>/otlp/, written durably.

A batch is one write() of complete lines followed by fsync, under a lock, and the receiver answers
2xx only after append() returns: an acknowledged span is on disk, and a span not yet on disk was
never acknowledged (the sender retries it). A crash mid-write leaves at most a torn last line;
opening the file again truncates it, and a failed write is cut back to where it started. Complete
lines of a batch that was never acknowledged may be sent again: readers count a span id once.

Readers of a file still being written must stop at the last newline (a line without one is a write
in flight). Files are named spool-YYYYMMDDHH.jsonl by the UTC hour they were written in; those
older than the retention are deleted at rotation.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from costwarden.state.errors import CostwardenError

PREFIX, SUFFIX = "spool-", ".jsonl"


class SpoolError(CostwardenError):
    """The spool cannot be written (disk full, read-only, permissions): the receiver answers 503."""


def spool_name(at: float) -> str:
    return f"{PREFIX}{datetime.fromtimestamp(at, timezone.utc):%Y%m%d%H}{SUFFIX}"


def repair_tail(fd: int) -> int:
    """Cut a torn last line (no newline) off an open file; returns the file's new size."""
    size = os.fstat(fd).st_size
    end = size
    while end > 0:
        start = max(0, end - 65536)
        chunk = os.pread(fd, end - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            end = start + nl + 1
            break
        end = start
    if end != size:
        os.ftruncate(fd, end)
        os.fsync(fd)
    return end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: Path, retention_days: float, clock: Any = time.time) -> None:
        self.directory = Path(directory)
        self.retention_s = retention_days * 86400
        self.clock = clock
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._name: str | None = None
        self._size = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._open(spool_name(self.clock()))  # the glob in billing.usage_paths matches from the start
        except OSError as exc:
            raise SpoolError(f"{self.directory}: cannot open the OTLP spool: {exc.strerror or exc}") from None

    @property
    def path(self) -> Path | None:
        return self.directory / self._name if self._name else None

    def _open(self, name: str) -> None:
        self._close()
        path = self.directory / name
        existed = path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = repair_tail(fd) if existed else 0
        except BaseException:
            os.close(fd)
            raise
        if not existed:
            _fsync_dir(self.directory)  # the new name survives a crash too
        self._fd, self._name, self._size = fd, name, size
        self._prune()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd, self._name = None, None

    def _prune(self) -> None:
        cutoff = spool_name(self.clock() - self.retention_s)
        for f in self.directory.glob(f"{PREFIX}*{SUFFIX}"):
            if f.name < cutoff and f.name != self._name:
                f.unlink(missing_ok=True)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write the records durably, or raise SpoolError having written none of them."""
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in records).encode()
        with self._lock:
            try:
                name = spool_name(self.clock())
                if name != self._name or self._fd is None:
                    self._open(name)
                assert self._fd is not None
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                os.fsync(self._fd)
            except OSError as exc:
                self._undo()
                raise SpoolError(f"cannot write the OTLP spool: {exc.strerror or exc}") from None
            self._size += len(data)

    def _undo(self) -> None:
        """Cut a failed write back; if even that fails, reopen (and repair) at the next append."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass
        self._close()

    def close(self) -> None:
        with self._lock:
            self._close()
