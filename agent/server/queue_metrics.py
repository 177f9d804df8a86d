"""The distributed mode's queue in /metrics: jobs by status, live workers, the parts of each policy's
latest tick by status, the age of the oldest waiting job; and this process's rate-budget waits.

Read at scrape time with one statement, only by a daemon in the scheduler or all role (the others
have no queue to show). Why one statement at scrape time and not a cache the leader refreshes:
every figure is an index lookup or a count over the unfinished jobs (procrastinate deletes the
finished ones, agent/server/fanout.py), so a scrape costs one round trip, and a scrape is never
staler than the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# Each branch yields (kind, label_a, label_b, value). The latest tick of a policy is `max(run_id)` over
# its parts: run ids sort by time, and PostgreSQL answers max() with a backward walk of run_parts'
# primary key that stops at the policy's newest part.
_QUERY = """
SELECT 'jobs' AS kind, status::text AS a, '' AS b, count(*)::float8 AS v FROM procrastinate_jobs GROUP BY status
UNION ALL
SELECT 'workers', '', '', count(*)::float8 FROM procrastinate_workers
 WHERE last_heartbeat > now() - make_interval(secs => :stalled)
UNION ALL
SELECT 'oldest', '', '', COALESCE(EXTRACT(EPOCH FROM now() - min(w.since)), 0)::float8 FROM (
  SELECT COALESCE(j.scheduled_at, (SELECT min(e.at) FROM procrastinate_events e
                                   WHERE e.job_id = j.id AND e.type = 'deferred')) AS since
  FROM procrastinate_jobs j WHERE j.status = 'todo') w WHERE w.since <= now()
UNION ALL
SELECT 'parts', l.policy, p.status, count(*)::float8
  FROM unnest(CAST(:policies AS text[])) AS l(policy)
  CROSS JOIN LATERAL (SELECT max(r.run_id) AS run_id FROM run_parts r WHERE r.policy = l.policy) m
  JOIN run_parts p ON p.run_id = m.run_id
 GROUP BY l.policy, p.status
"""

JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborting", "aborted")
PART_STATUSES = ("queued", "running", "done", "partial", "failed")


@dataclass
class QueueSnapshot:
    jobs: dict[str, int] = field(default_factory=dict)
    workers: int = 0
    oldest_waiting_seconds: float = 0.0
    parts: dict[tuple[str, str], int] = field(default_factory=dict)  # (policy, status) -> parts of its latest tick


def queue_snapshot(engine: Any, policies: list[str], *, stalled_after_seconds: float) -> QueueSnapshot:
    """The queue as it stands, in one statement; workers count as live while their heartbeat is fresher
    than `fanout.stalled_after_seconds` (the scheduler's own test of a dead worker)."""
    from sqlalchemy import text

    snap = QueueSnapshot()
    with engine.connect() as c:
        rows = c.execute(text(_QUERY), {"stalled": stalled_after_seconds, "policies": list(policies)}).all()
    for kind, a, b, v in rows:
        if kind == "jobs":
            snap.jobs[a] = int(v)
        elif kind == "workers":
            snap.workers = int(v)
        elif kind == "oldest":
            snap.oldest_waiting_seconds = max(0.0, float(v))
        else:
            snap.parts[(a, b)] = int(v)
    return snap


def scheduler_families(engine: Any, policies: list[str], *, stalled_after_seconds: float) -> Iterator[Any]:
    """The queue's families for a scrape; none (and one log line) when the database cannot answer, so
    /metrics still serves the rest."""
    import logging

    try:
        snap = queue_snapshot(engine, policies, stalled_after_seconds=stalled_after_seconds)
    except Exception as exc:  # noqa: BLE001 - a scrape never fails for the queue's figures
        logging.getLogger("costwarden.metrics").warning(
            "queue figures not read", extra={"error": f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}"})
        return
    yield from queue_families(snap)


def queue_families(snap: QueueSnapshot) -> Iterator[Any]:
    """Every status appears (0 when none), so a dashboard's series do not come and go."""
    jobs = GaugeMetricFamily("costwarden_queue_jobs", "Fan-out jobs in procrastinate's table, by status "
                             "(succeeded jobs are deleted by the workers)", labels=["status"])
    for status in sorted(set(JOB_STATUSES) | set(snap.jobs)):
        jobs.add_metric([status], snap.jobs.get(status, 0))
    yield jobs
    yield GaugeMetricFamily("costwarden_queue_workers", "Workers whose heartbeat is fresher than "
                            "fanout.stalled_after_seconds", value=snap.workers)
    yield GaugeMetricFamily("costwarden_queue_oldest_waiting_seconds", "Age of the oldest job waiting for a "
                            "worker (0 when none waits)", value=snap.oldest_waiting_seconds)
    parts = GaugeMetricFamily("costwarden_queue_parts", "Parts of each policy's latest tick, by status",
                              labels=["policy", "status"])
    for policy in sorted({p for p, _s in snap.parts}):  # a policy never fanned out has no tick to show
        for status in sorted(set(PART_STATUSES) | {s for p, s in snap.parts if p == policy}):
            parts.add_metric([policy, status], snap.parts.get((policy, status), 0))
    yield parts


def rate_budget_families() -> Iterator[Any]:
    """This process's requests budgeted and seconds slept waiting for the budget, by budget key."""
    from costwarden.tools.rate_budget import process_waits

    taken = CounterMetricFamily("costwarden_rate_budget_requests", "Cloud requests this process sent under "
                                "a fanout rate budget, by budget key", labels=["key"])
    waited = CounterMetricFamily("costwarden_rate_budget_wait_seconds", "Seconds this process waited for "
                                 "a fanout rate budget before sending, by budget key", labels=["key"])
    by_key: dict[str, tuple[int, float]] = {}
    for key, (n, secs) in process_waits().items():
        key = "account:*" if key.startswith("account:") else key  # one series for every account's budget
        n0, s0 = by_key.get(key, (0, 0.0))
        by_key[key] = (n0 + n, s0 + secs)
    for key, (n, secs) in sorted(by_key.items()):
        taken.add_metric([key], n)
        waited.add_metric([key], secs)
    yield taken
    yield waited
