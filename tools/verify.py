"""Read a resource back after a change until it shows the new state, or a deadline passes.

Cloud APIs accept a change before they apply it (an instance goes `stopping`, an endpoint
`Deleting`), so a tool verifies by observing, not by trusting the call's answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def read_back(observe: Callable[[], dict[str, Any]], settled: Callable[[dict[str, Any]], bool], *,
              timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
    """Return the first observed state that is settled, or the last one seen at the deadline."""
    deadline = time.monotonic() + timeout_s
    state = observe()
    while not settled(state) and time.monotonic() < deadline:
        time.sleep(poll_s)
        state = observe()
    return state


def marks_in_place(current: dict[str, str], wanted: dict[str, str], keep_prefix: str | None = None) -> bool:
    """Each wanted tag (AWS) or label (GCP) holds its value, or (with `keep_prefix`) a value an earlier
    call left with that prefix: an earlier `stop@2026-12-01` mark stands against a new `stop@2026-12-04`,
    so a detector that fires every day cannot push the date forever."""
    return all(current.get(k) == str(v) or (keep_prefix is not None and str(current.get(k, "")).startswith(keep_prefix))
               for k, v in wanted.items())
