"""One sweep's inventory: reads that several collectors make alike, made once and shared.

Why: a policy's collector used to read everything it needed itself, so two resource types that
need the same listing (EBS volumes, and the snapshots whose source volume may be gone) each
described it. An Inventory is a plain object made per sweep (or per job of a sweep) and handed
to the collectors in their Scope; it is never module-global, so nothing read in one sweep is
seen by the next. Safe with threads: one caller of a key reads, the others wait for its answer;
a read that fails is not kept (the next caller reads again and reports its own error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class Inventory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Hashable, Any] = {}
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.reads = 0  # reads made (not answered from memory), for tests and benchmarks

    def once(self, key: Hashable, read: Callable[[], T]) -> T:
        """`read()` the first time `key` is asked for in this inventory; its answer every later time."""
        with self._lock:
            if key in self._values:
                return self._values[key]  # type: ignore[no-any-return]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # single flight: a second thread waits for the first one's answer
            with self._lock:
                if key in self._values:
                    return self._values[key]  # type: ignore[no-any-return]
            value = read()
            with self._lock:
                self._values[key] = value
                self.reads += 1
            return value


def listing(inventory: Inventory | None, key: Hashable, read: Callable[[], Iterable[T]]) -> list[T]:
    """The whole listing under `key`, read once per inventory (every time without one)."""
    if inventory is None:
        return list(read())
    return inventory.once(key, lambda: list(read()))
