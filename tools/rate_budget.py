"""A request-rate budget shared by every worker and replica: token buckets keyed by API operation
(and by account), consulted before each cloud request is sent.

Why: botocore's retries react to throttling after AWS answered it, per client. A deployment with
many workers sends one operation (sts:AssumeRole, ec2:DescribeInstances, ...) from many clients
at once; AWS throttles by operation across the caller's whole account, so the budget has to be
counted where every worker sees it: a row per key in the PostgreSQL the replicas share, updated
in one statement. On SQLite (one process) the same buckets live in memory.

The bucket is GCRA (the "generic cell rate algorithm", a token bucket stored as one number): the
theoretical arrival time `tat` of the next request. Taking a token never fails; it returns how long
to wait, so a caller sleeps exactly that instead of polling the database. Grants are spaced
1/rate apart once the burst (rate x burst_seconds, at least 1) is used, so in any window of t
seconds at most rate x t + burst requests are let through. The wait is per key: a caller whose
operation or account is over budget sleeps; callers of other keys do not wait behind it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("costwarden.rate_budget")

TABLE = "costwarden_rate_buckets"


@dataclass(frozen=True)
class Bucket:
    """A key's rate (requests per second) and burst (requests let through at once after a quiet spell)."""

    rate: float
    burst: float

    @property
    def interval(self) -> float:
        return 1.0 / self.rate


def reserve(tat: float | None, now: float, bucket: Bucket) -> tuple[float, float]:
    """Take one token: (the bucket's new tat, seconds to wait before sending).

    The request is granted at now + wait; `tat` moves on by one interval from the later of itself
    and now. The pure function the in-memory and the SQL buckets both compute."""
    new_tat = max(tat if tat is not None else now, now) + bucket.interval
    return new_tat, max(0.0, new_tat - bucket.burst * bucket.interval - now)


class Buckets(Protocol):
    def take(self, key: str, bucket: Bucket) -> float:
        """Reserve one request under `key`; the seconds to wait before sending it."""


class LocalBuckets:
    """The buckets of one process (SQLite, or no shared database): a dict under a lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}

    def take(self, key: str, bucket: Bucket) -> float:
        with self._lock:
            self._tat[key], wait = reserve(self._tat.get(key), self._clock(), bucket)
            return wait


# One statement per request: the row lock of ON CONFLICT DO UPDATE orders concurrent takers, and the
# database's clock is the only clock (workers' clocks may differ; the wait they get back is relative).
_TAKE = f"""
INSERT INTO {TABLE} AS b (key, tat) VALUES (:key, EXTRACT(EPOCH FROM clock_timestamp()) + :interval)
ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, EXTRACT(EPOCH FROM clock_timestamp())) + :interval
RETURNING GREATEST(0, b.tat - :span - EXTRACT(EPOCH FROM clock_timestamp()))
"""
_CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (key text PRIMARY KEY, tat double precision NOT NULL)"


class PgBuckets:
    """The buckets every worker and replica shares: one row per key in PostgreSQL.

    The table is created on first use (under an advisory lock: replicas start together); it holds
    one small row per key, which nothing needs to migrate or clean up."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy import create_engine, text

        self._text = text
        self.engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
        self._ready = False
        self._ready_lock = threading.Lock()

    def _ensure_table(self) -> None:
        with self._ready_lock:
            if self._ready:
                return
            with self.engine.connect() as c:  # autocommit: a session lock, released below
                c.execute(self._text("SELECT pg_advisory_lock(hashtext('costwarden-rate-buckets'))"))
                try:
                    c.execute(self._text(_CREATE))
                finally:
                    c.execute(self._text("SELECT pg_advisory_unlock(hashtext('costwarden-rate-buckets'))"))
            self._ready = True

    def take(self, key: str, bucket: Bucket) -> float:
        """The wait; 0 (and a log line) when the database cannot answer twice in a row: the request
        then goes out unbudgeted, with botocore's retries as its only limit, rather than failing."""
        params = {"key": key, "interval": bucket.interval, "span": bucket.burst * bucket.interval}
        for attempt in (1, 2):  # a connection the database dropped is replaced by the pool on the second
            try:
                if not self._ready:
                    self._ensure_table()
                with self.engine.connect() as c:
                    return float(c.execute(self._text(_TAKE), params).scalar() or 0.0)
            except Exception as exc:  # noqa: BLE001 - the budget never fails the request it guards
                if attempt == 2:
                    log.warning("rate budget not read; request sent without it",
                                extra={"key": key, "error": f"{exc.__class__.__name__}: {str(exc)[:200]}"})
        return 0.0

    def close(self) -> None:
        self.engine.dispose()


@dataclass(frozen=True)
class Rules:
    """What the settings budget: `limits` by "service:Operation", "service:*" or "*" (the most specific
    applies), and `per_account` for every request of one account."""

    limits: Mapping[str, float]
    per_account: float | None = None
    burst_seconds: float = 1.0

    def bucket(self, rate: float) -> Bucket:
        return Bucket(rate, max(1.0, rate * self.burst_seconds))

    def operation_key(self, service: str, operation: str) -> str | None:
        for key in (f"{service}:{operation}", f"{service}:*", "*"):
            if key in self.limits:
                return key
        return None

    @property
    def empty(self) -> bool:
        return not self.limits and self.per_account is None


class RateBudget:
    """The rules over one set of buckets; `wait_for` is what a client's hook calls before a send."""

    def __init__(self, rules: Rules, buckets: Buckets, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rules = rules
        self.buckets = buckets
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited: dict[str, float] = {}  # seconds slept, by budget key: read by /metrics
        self.taken: dict[str, int] = {}

    def wait_for(self, service: str, operation: str, account: str) -> float:
        """Sleep until `service:operation` in `account` may be sent; the seconds slept.

        The account's bucket first, then the operation's: the shared budget is the one AWS enforces
        across accounts, so the request goes out right after its grant there."""
        total = 0.0
        keys: list[tuple[str, Bucket]] = []
        if self.rules.per_account is not None:
            keys.append((f"account:{account}", self.rules.bucket(self.rules.per_account)))
        op_key = self.rules.operation_key(service, operation)
        if op_key is not None:
            key = op_key if op_key != "*" and not op_key.endswith(":*") else f"{service}:{operation}"
            keys.append((key, self.rules.bucket(self.rules.limits[op_key])))
        for key, bucket in keys:
            wait = self.buckets.take(key, bucket)
            if wait > 0:
                self._sleep(wait)
            total += wait
            with self._lock:
                self.waited[key] = self.waited.get(key, 0.0) + wait
                self.taken[key] = self.taken.get(key, 0) + 1
        return total

    def stats(self) -> dict[str, tuple[int, float]]:
        """(requests budgeted, seconds slept) by budget key, since the process started."""
        with self._lock:
            return {k: (n, self.waited.get(k, 0.0)) for k, n in self.taken.items()}


_BUDGETS: dict[tuple[Any, ...], RateBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def budget_for(database_url: str | None, rules: Rules) -> RateBudget | None:
    """The process's budget for these rules (None when nothing is budgeted): in PostgreSQL when the
    database is PostgreSQL, so every worker and replica draws from the same buckets; else in memory."""
    if rules.empty:
        return None
    shared = bool(database_url) and str(database_url).startswith("postgresql")
    key = (database_url if shared else None, tuple(sorted(rules.limits.items())), rules.per_account,
           rules.burst_seconds)
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get(key)
        if budget is None:
            buckets: Buckets = PgBuckets(str(database_url)) if shared else LocalBuckets()
            budget = _BUDGETS[key] = RateBudget(rules, buckets)
        return budget


def process_waits() -> dict[str, tuple[int, float]]:
    """Requests budgeted and seconds slept in this process, by budget key (every budget summed)."""
    out: dict[str, tuple[int, float]] = {}
    with _BUDGETS_LOCK:
        budgets = list(_BUDGETS.values())
    for b in budgets:
        for k, (n, w) in b.stats().items():
            n0, w0 = out.get(k, (0, 0.0))
            out[k] = (n0 + n, w0 + w)
    return out
