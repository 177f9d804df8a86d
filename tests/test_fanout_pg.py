"""The distributed mode against the local PostgreSQL (skipped when it is not there): account
sweeps as procrastinate jobs taken by `costwarden run --role worker` processes, counted at the
many-accounts fake (tests/fakes/accounts.py)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fanout_world import World, fanout_world

REGIONS = ["us-east-1", "eu-west-1"]


@pytest.fixture
def pg_url(no_costwarden_env) -> Iterator[str]:
    from tests.pg import throwaway_database

    with throwaway_database("costwarden_fanout") as url:
        yield url


def _parts(world: World, run_id: str) -> list:
    return [p for p in world.store.parts_of(run_id) if p.account != "unlisted"]


def test_two_workers_sweep_every_account_and_region_once_under_one_run(tmp_path: Path, pg_url: str) -> None:
    with fanout_world(tmp_path, pg_url, n_accounts=8, regions=REGIONS, latency_s=0.02, concurrency=2) as w:
        run_id = w.tick()
        assert len(_parts(w, run_id)) == 8 * 2  # one part per (policy, account, region)
        w.worker("a")
        w.worker("b")
        run = w.wait_closed(run_id)
        assert run.status == "done", run.errors
        parts = _parts(w, run_id)
        assert {(p.status, p.attempts) for p in parts} == {("done", 1)}
        assert len({p.worker for p in parts}) == 2  # both workers took jobs
        # exactly once per (account, region), counted where the calls arrive
        assert w.fake.per_account("DescribeInstances") == {a: len(REGIONS) for a in w.accounts}
        assert w.fake.per_account("AssumeRole") == {a: len(REGIONS) for a in w.accounts}  # one per job
        # one run the report reads: every idle GPU instance found once, totals are the parts' sums
        findings = w.store.findings_for_run(run_id)
        assert sorted(f.resource_id for f in findings) == sorted(w.expected)
        assert run.monthly_waste_usd == sum(p.monthly_waste_usd for p in parts) > 0
        assert run.monthly_waste_usd == sum(f.monthly_waste_usd for f in findings)
        calls = {(c["service"], c["operation"]): c["count"] for c in run.api_calls}
        assert calls[("ec2", "DescribeInstances")] == 16
        assert ("ec2", "StopInstances") not in calls  # dry-run

        # enqueueing the tick's parts again (a scheduler that restarted mid-tick) sweeps nothing twice
        from costwarden.agent.server.fanout_tick import defer_parts
        from costwarden.state.store.parts import PartKey

        keys = [PartKey(p.run_id, p.policy, p.account, p.region, p.role_arn) for p in parts]
        hashes = {p.policy: _policy_hash(w) for p in parts}
        before = sum(w.fake.per_account("DescribeInstances").values())
        from datetime import datetime, timezone

        assert defer_parts(w.app, keys, hashes, now=datetime.now(timezone.utc), dry_run=True) == len(keys)
        _wait_queue_empty(w)
        assert sum(w.fake.per_account("DescribeInstances").values()) == before
        assert {(p.status, p.attempts) for p in _parts(w, run_id)} == {("done", 1)}


def test_a_throttled_account_does_not_stall_the_other_accounts(tmp_path: Path, pg_url: str) -> None:
    with fanout_world(tmp_path, pg_url, n_accounts=6, regions=["us-east-1"], concurrency=2, max_attempts=5) as w:
        slow = w.accounts[0]
        w.fake.throttle.add(slow)  # every EC2 call of this account answers RequestLimitExceeded ...
        # ... after 1 s: botocore's jittered backoff alone can sum to less than the other five jobs take
        w.fake.throttle_delay_s = 1.0
        run_id = w.tick()
        w.worker("a")
        run = w.wait_closed(run_id)
        parts = {p.account: p for p in _parts(w, run_id)}
        throttled = parts.pop(slow)
        assert throttled.status == "partial" and "RequestLimitExceeded" in " ".join(throttled.errors)
        assert w.fake.per_account("DescribeInstances")[slow] == 5  # botocore's retries, all of them
        # the other accounts were swept (by the worker's other slot) while it backed off
        assert all(p.status == "done" for p in parts.values())
        assert max(p.finished_at for p in parts.values()) < throttled.finished_at
        assert run.status == "partial" and any(slow in e for e in run.errors)


def test_a_worker_killed_mid_action_is_retried_by_another_and_acts_once(tmp_path: Path, pg_url: str) -> None:
    with fanout_world(tmp_path, pg_url, n_accounts=4, regions=["us-east-1"], live=True, concurrency=1,
                      heartbeat_s=1.0, stalled_s=4.0) as w:
        victim = w.accounts[0]
        hold = w.fake.holds[(victim, "StopInstances")] = threading.Event()
        run_id = w.tick()
        first = w.worker("first")
        deadline = time.monotonic() + 60
        while w.fake.per_account("StopInstances")[victim] == 0:  # the stop call is in flight ...
            assert time.monotonic() < deadline and first.poll() is None, "the first worker never reached the stop"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)  # ... when its worker dies
        first.wait()
        second = w.worker("second")
        run = w.wait_closed(run_id, stalled=True)  # the scheduler's stalled-job check hands the job over
        hold.set()
        parts = {p.account: p for p in _parts(w, run_id)}
        assert parts[victim].attempts == 2 and parts[victim].status == "done"
        assert parts[victim].worker.endswith(f":{second.pid}")  # the retry ran in the other worker
        assert all(p.status == "done" for p in parts.values()) and run.status == "done"
        # no account lost, none swept twice after it finished; the action executed at most once
        stops = w.fake.per_account("StopInstances")
        assert stops == {a: 1 for a in w.accounts}
        actions = {a.args["account"]: a for a in w.store.actions_for_run(run_id)}
        assert sorted(actions) == sorted(w.accounts)
        assert actions[victim].status == "pending"  # claimed by the dead attempt: the claim lease settles it
        assert all(actions[a].status == "done" for a in w.accounts[1:])
        claims = [d.decision for d in w.store.decisions(action_id=actions[victim].id) if d.stage == "execute"]
        assert claims == ["claimed"]  # the retry did not try to claim it again: it read the claim as it stood
        assert sorted(f.resource_id for f in w.store.findings_for_run(run_id)) == sorted(w.expected)


def test_max_resources_bounds_what_a_policy_acts_on_across_the_parts_of_a_run(tmp_path: Path, pg_url: str) -> None:
    # 6 accounts with one idle GPU instance each, a live auto policy with max-resources 3, two workers:
    # each part sees one resource, but the run as a whole must act on at most 3
    with fanout_world(tmp_path, pg_url, n_accounts=6, regions=["us-east-1"], live=True, concurrency=2,
                      max_resources=3) as w:
        run_id = w.tick()
        w.worker("a")
        w.worker("b")
        run = w.wait_closed(run_id)
        assert run.status == "done", run.errors
        stops = sum(w.fake.per_account("StopInstances").values())
        actions = w.store.actions_for_run(run_id)
        assert len(actions) == 6  # every finding is planned and recorded ...
        done = [a for a in actions if a.status == "done"]
        reported = [a for a in actions if "max-resources guard" in (a.reason or "")]
        assert stops == len(done) == 3  # ... the first three parts act (the parts' order decides which) ...
        assert len(reported) == 3 and all(a.status != "done" for a in reported)  # ... the rest only report
        assert len(w.store.findings_for_run(run_id)) == 6


def _policy_hash(w: World) -> str:
    from costwarden.policies.loader import load_policies

    (lp,) = load_policies(list(w.settings.policies))
    return lp.content_hash


def _wait_queue_empty(w: World, timeout: float = 60) -> None:
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with w.store.engine.connect() as c:
            if not c.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")).scalar():
                return
        time.sleep(0.2)
    raise AssertionError("jobs still queued")


def test_the_daemon_in_role_all_schedules_a_tick_and_sweeps_it(tmp_path: Path, pg_url: str) -> None:
    """`costwarden run --role all`: the elected replica enqueues the policy's tick at start-up and its
    own worker thread sweeps it; the run closes with every account swept once."""
    import os
    import subprocess
    import sys

    from tests.fanout_estate import FAKE_ENV

    with fanout_world(tmp_path, pg_url, n_accounts=3, regions=["us-east-1"], concurrency=2) as w:
        log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen([sys.executable, "-m", "costwarden.agent.cli", "run", "--role", "all", "--port", "0",
                                   "--host", "127.0.0.1", "--config", str(w.config)],
                                  env={**os.environ, **FAKE_ENV}, stdout=log, stderr=subprocess.STDOUT)
        w.workers.append(daemon)
        deadline = time.monotonic() + 120
        runs = []
        while time.monotonic() < deadline:
            runs = [r for r in w.store.list_runs() if r.status != "running"]
            if runs:
                break
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(0.3)
        assert runs, (tmp_path / "daemon.log").read_text()[-3000:]
        (run,) = runs
        assert run.status == "done" and run.trigger == "schedule"
        assert {(p.account, p.status) for p in _parts(w, run.id)} == {(a, "done") for a in w.accounts}
        assert w.fake.per_account("DescribeInstances") == {a: 1 for a in w.accounts}
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
        log.close()


def test_the_distributed_roles_refuse_sqlite_in_one_line(tmp_path: Path, no_costwarden_env, capsys) -> None:
    from costwarden.agent.cli.main import main

    assert main(["run", "--role", "worker", "--state-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "needs database_url on PostgreSQL" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["run", "--role", "boss", "--state-dir", str(tmp_path)]) == 2
    assert "--role must be single, scheduler, worker or all" in capsys.readouterr().err


def test_a_tick_is_skipped_while_the_previous_one_is_still_being_swept(tmp_path: Path, pg_url: str) -> None:
    with fanout_world(tmp_path, pg_url, n_accounts=3, regions=["us-east-1"]) as w:
        first = w.tick()  # no worker: its parts stay queued
        assert w.tick() == ""  # a second tick would pile up behind it
        assert [r.id for r in w.store.list_runs()] == [first]
        from sqlalchemy import text

        with w.store.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")).scalar() == 3
        with w.store.engine.begin() as c:  # the jobs vanish (failed for good, or deleted by hand) ...
            c.execute(text("DELETE FROM procrastinate_jobs"))
        second = w.tick()  # ... so the open parts would never finish: they are failed, and ticks go on
        assert second not in ("", first)
        old = w.store.get_run(first)
        assert old.status == "partial" and all("left the queue" in e for e in old.errors) and len(old.errors) == 3


def test_parts_finishing_at_once_close_their_run_exactly_once(pg_url: str) -> None:
    """Many parts of one run finish at the same moment from threads of their own (as the jobs of
    several workers do): exactly one of them closes the run, with every part's totals in it."""
    from concurrent.futures import ThreadPoolExecutor
    from decimal import Decimal

    from costwarden.state.store import Store
    from costwarden.state.store.parts import PartKey

    store = Store(pg_url)
    for attempt in range(3):  # a few runs: the race has several interleavings
        run_id = f"run_race_{attempt}"
        store.start_run(run_id, dry_run=True, policies=["p"], trigger="schedule")
        keys = [PartKey(run_id, "p", f"{i:012d}", "us-east-1") for i in range(24)]
        store.plan_parts(keys)
        for k in keys:
            assert store.begin_part(k, "w") == 1
        barrier = threading.Barrier(8)

        def finish(k: PartKey) -> bool:
            if int(k.account) < 8:
                barrier.wait(10)  # the first eight start together
            return store.finish_part(k, status="done", errors=[], monthly_waste=Decimal(1), projected_savings=Decimal(0),
                                     api_calls=[{"service": "ec2", "operation": "DescribeInstances", "count": 1}])

        with ThreadPoolExecutor(8) as pool:
            closed = list(pool.map(finish, keys))
        assert closed.count(True) == 1
        run = store.get_run(run_id)
        assert run.status == "done" and run.monthly_waste_usd == Decimal(24)
        assert run.api_calls == [{"service": "ec2", "operation": "DescribeInstances", "count": 24}]
        assert store.begin_part(keys[0], "late") is None  # finished: never begun again
    store.close()
