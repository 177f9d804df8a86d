"""The fan-out queue's series in /metrics (agent/server/queue_metrics.py) against the local PostgreSQL
(skipped when it is not there): the numbers a scrape shows are the ones in procrastinate's tables
and run_parts, after a tick is enqueued and after a worker swept it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fanout_world import World, fanout_world


@pytest.fixture
def pg_url(no_costwarden_env) -> Iterator[str]:
    from tests.pg import throwaway_database

    with throwaway_database("costwarden_queue") as url:
        yield url


def _scrape(w: World, policies: list[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from costwarden.agent.server.fanout import FanoutScheduler
    from costwarden.agent.server.metrics import ProcessCounters, render

    sched = FanoutScheduler(w.settings, w.store, [], role="scheduler")
    try:
        text = render(w.store, ProcessCounters(), {"leader": True}, queue=lambda: sched.figures(policies)).decode()
    finally:
        sched.app.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name.startswith("costwarden_queue_")}


def _db(w: World, sql: str) -> list[tuple]:
    from sqlalchemy import text

    with w.store.engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql)).all()]


def test_the_queue_series_match_the_tables_after_a_tick_and_after_its_sweep(tmp_path: Path, pg_url: str) -> None:
    with fanout_world(tmp_path, pg_url, n_accounts=5, regions=["us-east-1", "eu-west-1"], concurrency=2) as w:
        (policy,) = {lp.name for lp in _policies(w)}
        run_id = w.tick()
        time.sleep(1.1)  # the jobs have waited a second
        m = _scrape(w, [policy, "never-fanned-out"])
        todo = _db(w, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")[0][0]
        assert todo == 10 and m[("costwarden_queue_jobs", (("status", "todo"),))] == todo
        assert m[("costwarden_queue_jobs", (("status", "doing"),))] == 0
        assert m[("costwarden_queue_workers", ())] == 0
        assert 1.0 <= m[("costwarden_queue_oldest_waiting_seconds", ())] < 60
        queued = _db(w, f"SELECT count(*) FROM run_parts WHERE run_id = '{run_id}' AND status = 'queued'")[0][0]
        assert queued == 10 and m[("costwarden_queue_parts", (("policy", policy), ("status", "queued")))] == queued
        assert not any(dict(labels).get("policy") == "never-fanned-out" for _n, labels in m)

        w.worker("a")
        assert w.wait_closed(run_id).status == "done"
        m = _scrape(w, [policy])
        assert m[("costwarden_queue_jobs", (("status", "todo"),))] == 0  # succeeded jobs are deleted
        assert m[("costwarden_queue_oldest_waiting_seconds", ())] == 0
        live = _db(w, "SELECT count(*) FROM procrastinate_workers")[0][0]
        assert live == 1 and m[("costwarden_queue_workers", ())] == live
        assert m[("costwarden_queue_parts", (("policy", policy), ("status", "done")))] == 10
        assert m[("costwarden_queue_parts", (("policy", policy), ("status", "queued")))] == 0

        worker = w.workers[0]
        worker.terminate()
        assert worker.wait(30) == 0
        second = w.tick()  # the latest tick is the one shown
        m = _scrape(w, [policy])
        assert second != run_id
        assert m[("costwarden_queue_parts", (("policy", policy), ("status", "queued")))] == 10
        assert m[("costwarden_queue_parts", (("policy", policy), ("status", "done")))] == 0
        assert m[("costwarden_queue_workers", ())] == _db(w, "SELECT count(*) FROM procrastinate_workers")[0][0] == 0


def test_a_scrape_without_the_queue_tables_still_serves_the_rest(tmp_path: Path, pg_url: str, caplog) -> None:
    from costwarden.agent.server.metrics import ProcessCounters, render
    from costwarden.agent.server.queue_metrics import scheduler_families
    from costwarden.state.store import Store

    store = Store(pg_url)  # no procrastinate schema here
    try:
        text = render(store, ProcessCounters(), {}, queue=lambda: scheduler_families(
            store.engine, ["p"], stalled_after_seconds=30)).decode()
    finally:
        store.close()
    assert "costwarden_runs" in text and "costwarden_queue_jobs" not in text
    assert any("queue figures not read" in r.getMessage() for r in caplog.records)


def _policies(w: World) -> list:
    from costwarden.policies.loader import load_policies

    return load_policies(list(w.settings.policies))
