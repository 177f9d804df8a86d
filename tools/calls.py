"""A count of every cloud API call a sweep made, of every call dry-run refused, and of the retries
the SDK made behind those calls (a call retried twice is one call and two retries).

One class for all providers: each names its calls its own way ("ec2.StopInstances",
"compute.POST instances/stop") and says which names are mutating.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable


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

    def add_retries(self, name: str, n: int) -> None:
        with self._lock:
            self.retries[name] += n

    def mutating(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if self._is_mutating(k)}
