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
