"""The clock every stored timestamp is read from: the wall clock, or a sweep's own clock.

A sweep runs at a given `now` (the scheduler's tick, or a test's fixed instant) and compares the
timestamps it writes with that `now`: cooldowns, approval expiry, schedule windows. If the store
stamped rows with the wall clock while the sweep reasoned with its own `now`, the two would
disagree whenever they differ (a replayed or simulated sweep, or a test on any other date). So a
sweep sets its clock for its own thread of work (a context variable: a Slack click served on
another thread at the same moment keeps the wall clock), and the clock advances from the sweep's
`now` as real time passes, so rows written in order stay in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone

_clock: ContextVar[Callable[[], datetime] | None] = ContextVar("costwarden_clock", default=None)


def utcnow() -> datetime:
    """Now, in UTC: the sweep's clock inside a sweep, the wall clock elsewhere."""
    clock = _clock.get()
    return clock() if clock is not None else datetime.now(timezone.utc)


@contextmanager
def clock_at(now: datetime) -> Iterator[None]:
    """Within this block (and the threads it starts with a copied context), time starts at `now`."""
    if now.tzinfo is None:
        raise ValueError("clock_at needs an aware datetime")
    start = time.monotonic()
    token = _clock.set(lambda: now + timedelta(seconds=time.monotonic() - start))
    try:
        yield
    finally:
        _clock.reset(token)
