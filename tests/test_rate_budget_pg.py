"""The shared request-rate budget on the local PostgreSQL (skipped when it is not there): buckets
drawn from by several engines at once, and `fanout.rate_limits` across two worker processes,
measured where the requests arrive (tests/fakes/accounts.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fanout_world import fanout_world


@pytest.fixture
def pg_url(no_costwarden_env) -> Iterator[str]:
    from tests.pg import throwaway_database

    with throwaway_database("costwarden_budget") as url:
        yield url


def _most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, i = 0, 0
    for j, t in enumerate(times):
        while t - times[i] > window:
            i += 1
        best = max(best, j - i + 1)
    return best


def _within(times: list[float], rate: float, burst: float, slack_s: float = 0.1) -> bool:
    """No window [a, b] of the sorted times holds more than rate x (b - a + slack) + burst + 1."""
    times = sorted(times)
    return all(j - i + 1 <= rate * (times[j] - times[i] + slack_s) + burst + 1
               for i in range(len(times)) for j in range(i, len(times)))


def test_engines_drawing_from_one_key_share_its_rate_and_other_keys_do_not_wait(pg_url: str) -> None:
    from costwarden.tools.rate_budget import Bucket, PgBuckets

    bucket = Bucket(rate=20.0, burst=2.0)
    grants: list[float] = []
    lock = threading.Lock()
    engines = [PgBuckets(pg_url) for _ in range(4)]  # four engines: four workers' connection pools

    def worker(b: PgBuckets) -> None:
        for _ in range(10):
            time.sleep(b.take("sts:AssumeRole", bucket))
            with lock:
                grants.append(time.monotonic())

    try:
        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(b,)) for b in engines]
        for t in threads:
            t.start()
        time.sleep(0.5)  # while the key is deep in debt ...
        assert engines[0].take("ec2:DescribeInstances", bucket) == 0  # ... another key is granted at once
        for t in threads:
            t.join()
        assert len(grants) == 40
        assert _within(grants, bucket.rate, bucket.burst, slack_s=0.02)
        assert max(grants) - started >= (40 - bucket.burst) / bucket.rate - 0.1  # 38 spaced grants: ~1.9 s
        from sqlalchemy import text

        with engines[0].engine.connect() as c:  # one row per key, whatever the number of takers
            assert c.execute(text("SELECT count(*) FROM costwarden_rate_buckets")).scalar() == 2
    finally:
        for b in engines:
            b.close()


@pytest.mark.parametrize("budgeted", [True, False], ids=["budget", "no-budget"])
def test_two_workers_keep_assume_role_within_the_shared_budget(tmp_path: Path, pg_url: str, budgeted: bool) -> None:
    """16 accounts, 12 job slots in two processes: unbudgeted, their AssumeRoles go out nearly at once;
    at 2 per second (burst 1) they are spread over 7.5 s, however the two workers interleave."""
    n, rate, burst_s = 16, 2.0, 0.5
    fanout = {"rate_limits": {"sts:AssumeRole": rate}, "rate_burst_seconds": burst_s} if budgeted else {}
    with fanout_world(tmp_path, pg_url, n_accounts=n, regions=["us-east-1"], concurrency=6, fanout=fanout) as w:
        run_id = w.tick()
        w.fake.clear_calls()  # the tick's own listing made no AssumeRole; count the workers' only
        w.worker("a")
        w.worker("b")
        run = w.wait_closed(run_id, timeout=180)
        assert run.status == "done", run.errors
        parts = [p for p in w.store.parts_of(run_id) if p.account != "unlisted"]
        assert len({p.worker for p in parts}) == 2  # both processes drew from the budget
        times = [t for t, _a, op in w.fake.arrivals if op == "AssumeRole"]
        assert len(times) == n
        # timed where they arrive: a request's trip after its grant varies (threads, a busy machine),
        # so every window gets 0.5 s and one request of slack
        spread = [round(t - min(times), 3) for t in sorted(times)]
        if budgeted:
            assert _within(times, rate, rate * burst_s, slack_s=0.5), spread
            assert max(times) - min(times) >= (n - rate * burst_s) / rate - 0.5, spread  # ~7.5 s at 2/s
        else:  # the same check fails without the budget
            assert not _within(times, rate, rate * burst_s, slack_s=0.5), spread
            assert _most_in_window(times, 1.0) > rate * 1.0 + rate * burst_s + 1, spread  # 3 allowed in 1 s, and one of slack


def test_under_budgets_a_throttled_account_still_does_not_stall_the_others(tmp_path: Path, pg_url: str) -> None:
    """A throttled account's retries wait for its own account's budget and back off in its own
    client; with one worker and two slots the other accounts are all swept before it gives up."""
    fanout = {"rate_limits": {"ec2:*": 20, "sts:AssumeRole": 20}, "per_account_rate": 2, "rate_burst_seconds": 0.5}
    with fanout_world(tmp_path, pg_url, n_accounts=6, regions=["us-east-1"], concurrency=2, max_attempts=5,
                      fanout=fanout) as w:
        slow = w.accounts[0]
        w.fake.throttle.add(slow)
        run_id = w.tick()
        w.worker("a")
        w.wait_closed(run_id, timeout=180)
        parts = {p.account: p for p in w.store.parts_of(run_id) if p.account != "unlisted"}
        throttled = parts.pop(slow)
        assert throttled.status == "partial" and "RequestLimitExceeded" in " ".join(throttled.errors)
        assert w.fake.per_account("DescribeInstances")[slow] == 5  # every retry sent
        assert all(p.status == "done" for p in parts.values())
        assert max(p.finished_at for p in parts.values()) < throttled.finished_at
