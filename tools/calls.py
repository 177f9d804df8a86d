"""A count of every cloud API call a sweep made, of every call dry-run refused, and of the retries
the SDK made behind those calls (a call retried twice is one call and two retries).

One class for all providers: each names its calls its own way ("ec2.StopInstances",
"compute.POST instances/stop") and says which names are mutating.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

_process_lock = threading.Lock()
_PROCESS_CALLS: Counter[str] = Counter()  # every CallLog's sent calls since the process started; read by /metrics


class CallLog:
    def __init__(self, is_mutating: Callable[[str], bool]) -> None:
        self._lock = threading.Lock()
        self._is_mutating = is_mutating
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    def add(self, name: str, refused: bool = False) -> None:
        with self._lock:
            (self.refused if refused else self.calls)[name] += 1
        if not refused:
            with _process_lock:
                _PROCESS_CALLS[name] += 1

    def add_retries(self, name: str, n: int) -> None:
        with self._lock:
            self.retries[name] += n

    def mutating(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if self._is_mutating(k)}


def process_call_counts() -> dict[str, int]:
    """Calls sent by this process since it started (every CallLog, sweeps or not), by name."""
    with _process_lock:
        return dict(_PROCESS_CALLS)


def split_name(name: str) -> tuple[str, str]:
    """'ec2.DescribeInstances' -> ('ec2', 'DescribeInstances'); 'compute.GET instances' -> ('compute', 'GET instances')."""
    service, _, operation = name.partition(".")
    return service, operation


def by_operation(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """`[{"service", "operation", "count"}]` sorted by service then operation, zero counts left out:
    the shape the audit JSON and the runs table share."""
    return [{"service": s, "operation": o, "count": n}
            for (s, o), n in sorted((split_name(k), v) for k, v in counts.items()) if n]
