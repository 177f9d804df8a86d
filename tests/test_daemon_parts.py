"""Scheduling, reload, log redaction and the leader lock, piece by piece."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from sqlalchemy import create_engine

from costwarden.agent.config import Settings
from costwarden.agent.server.daemon import Daemon, trigger_for
from costwarden.agent.server.leader import LeaderLock
from costwarden.agent.server.logs import JsonFormatter, redact
from tests.pg import admin_engine

POLICY = """
policies:
  - name: idle
    resource: aws.ec2
    schedule: {schedule}
    filters: [{{type: idle-gpu}}]
"""


def daemon(tmp_path, schedule: str = "every 2h") -> Daemon:
    (tmp_path / "p.yml").write_text(POLICY.format(schedule=schedule))
    settings = Settings(state_dir=tmp_path / "state", policies=[tmp_path / "p.yml"])
    return Daemon(settings, host="127.0.0.1", port=0)


def paused_scheduler(d: Daemon):
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    s = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=d.store.engine)}, timezone="UTC")
    s.start(paused=True)  # nothing fires: these tests look at the job store only
    return s


def test_triggers():
    assert trigger_for("every 90s").interval == timedelta(seconds=90)
    assert trigger_for("every 2h").interval == timedelta(hours=2)
    assert "minute='*/5'" in str(trigger_for("*/5 * * * *"))


def test_jobs_persist_and_keep_their_clock_across_restarts(tmp_path):
    d = daemon(tmp_path)
    d.scheduler = paused_scheduler(d)
    d.sync_jobs()
    job = d.scheduler.get_job("policy:idle")
    assert job.name == "every 2h" and job.max_instances == 1 and job.coalesce
    first = job.next_run_time + timedelta(minutes=37)  # as if the clock had run for a while
    job.modify(next_run_time=first)
    d.scheduler.shutdown(wait=False)

    again = daemon(tmp_path)  # a restart: same job store, same schedule
    again.scheduler = paused_scheduler(again)
    again.sync_jobs()
    assert again.scheduler.get_job("policy:idle").next_run_time == first  # not reset
    again.scheduler.shutdown(wait=False)


def test_late_cron_ticks_are_skipped_after_300s_and_interval_ticks_never(tmp_path):
    from costwarden.agent.server.daemon import MISFIRE_GRACE_S

    d = daemon(tmp_path, schedule='"0 6 * * 1-5"')
    d.scheduler = paused_scheduler(d)
    d.sync_jobs()
    job = d.scheduler.get_job("policy:idle")
    assert MISFIRE_GRACE_S == 300 and job.misfire_grace_time == 300
    job.modify(misfire_grace_time=None)  # as a release without the limit stored it
    d.sync_jobs()
    assert d.scheduler.get_job("policy:idle").misfire_grace_time == 300
    d.scheduler.shutdown(wait=False)
    d.store.close()
    d.http.stop()

    (tmp_path / "other").mkdir()
    interval = daemon(tmp_path / "other")
    interval.scheduler = paused_scheduler(interval)
    interval.sync_jobs()
    assert interval.scheduler.get_job("policy:idle").misfire_grace_time is None
    interval.scheduler.shutdown(wait=False)
    interval.store.close()
    interval.http.stop()


def test_changed_policy_file_is_picked_up_and_a_broken_one_is_refused(tmp_path, caplog):
    d = daemon(tmp_path)
    d.scheduler = paused_scheduler(d)
    d.sync_jobs()
    (tmp_path / "p.yml").write_text(POLICY.format(schedule="'*/10 * * * *'").replace("name: idle", "name: idle-v2"))
    assert d._policy_mtimes() != d._mtimes  # what the main loop polls for
    d.reload()
    assert sorted(d.policies) == ["idle-v2"]
    assert [j.id for j in d.scheduler.get_jobs()] == ["policy:idle-v2"]
    assert "minute='*/10'" in str(d.scheduler.get_job("policy:idle-v2").trigger)

    (tmp_path / "p.yml").write_text("policies: [")
    with caplog.at_level(logging.ERROR):
        d.reload()
    assert sorted(d.policies) == ["idle-v2"]  # the policies in force stay in force
    assert "policy reload refused" in caplog.text
    d.scheduler.shutdown(wait=False)


def test_secrets_are_redacted_from_log_lines():
    record = logging.LogRecord("x", logging.INFO, "", 0, "posting with xoxb-1234567890-abcdef token=hunter2", (), None)
    record.signing_secret = "8f14e45fceea167a5a36dedd4bea2543"
    record.url = "postgresql://app:pa55word@db/costwarden"
    record.detail = {"api_key": "sk-abcdefghijklmnopqrstu", "region": "us-east-1"}
    line = JsonFormatter().format(record)
    for secret in ("xoxb-1234567890", "hunter2", "8f14e45f", "pa55word", "sk-abcdefghijklmnop"):
        assert secret not in line
    event = json.loads(line)
    assert event["detail"]["region"] == "us-east-1" and event["url"].startswith("postgresql://app:[REDACTED]@db")
    assert redact("AKIAABCDEFGHIJKLMNOP in a message") == "[REDACTED] in a message"


def _pg_engine():
    return admin_engine(isolation_level="READ COMMITTED")


def test_only_one_replica_leads_on_postgresql():
    a, b = LeaderLock(_pg_engine(), key=424242), LeaderLock(_pg_engine(), key=424242)
    try:
        assert a.try_acquire() is True
        assert b.try_acquire() is False  # stands by
        assert a.still_held() is True
        a.release()
        assert b.try_acquire() is True  # takes over once the leader goes
        assert a.try_acquire() is False
    finally:
        a.release()
        b.release()


def test_sqlite_is_single_host_and_always_leads(tmp_path):
    lock = LeaderLock(create_engine(f"sqlite:///{tmp_path}/x.db"))
    assert lock.try_acquire() and lock.still_held()


def test_weekly_digest_is_posted_once_a_week(tmp_path, no_costwarden_env):
    from decimal import Decimal

    from costwarden.agent.config import SlackSettings
    from costwarden.state.domain import Finding
    from tests.fakes.slack import FakeSlack

    slack = FakeSlack("xoxb-digest-0000")
    try:
        (tmp_path / "p.yml").write_text(POLICY.format(schedule="every 2h"))
        settings = Settings(state_dir=tmp_path / "state", policies=[tmp_path / "p.yml"],
                            slack=SlackSettings(bot_token="xoxb-digest-0000", channel="#finops", base_url=slack.base_url))
        d = Daemon(settings, host="127.0.0.1", port=0)
        d._housekeeping()  # nothing found yet: no message
        assert slack.methods().count("chat.postMessage") == 0
        d.store.start_run("r", dry_run=True, policies=["idle"], trigger="t")
        d.store.add_findings("r", [Finding("f", "idle", "idle-gpu", "aws", "1", "us-east-1", "i-1", "aws.ec2", {},
                                           Decimal("100"), "medium")])
        d.store.finish_run("r", status="done", errors=[], monthly_waste=Decimal("100"), projected_savings=Decimal(0))
        d._housekeeping()
        d._housekeeping()  # an hour later: not again
        assert slack.methods().count("chat.postMessage") == 1
        assert d.store.last_decision_at(stage="digest", decision="posted") is not None
    finally:
        slack.stop()


def test_a_job_stored_before_the_costwarden_package_keeps_its_clock(tmp_path):
    """An upgrade from a release whose job function was `agent.daemon:sweep_policy_job`."""
    import pickle

    from sqlalchemy import text

    from costwarden.agent.server.job_refs import rewrite_moved_job_refs

    d = daemon(tmp_path)
    d.scheduler = paused_scheduler(d)
    d.sync_jobs()
    first = d.scheduler.get_job("policy:idle").next_run_time + timedelta(minutes=37)
    d.scheduler.get_job("policy:idle").modify(next_run_time=first)
    d.scheduler.shutdown(wait=False)
    with d.store.engine.begin() as conn:  # as the old release stored it
        blob = conn.execute(text("SELECT job_state FROM apscheduler_jobs WHERE id = 'policy:idle'")).scalar_one()
        state = pickle.loads(blob)
        assert state["func"] == "costwarden.agent.server.daemon:sweep_policy_job"
        state["func"] = "agent.daemon:sweep_policy_job"
        conn.execute(text("UPDATE apscheduler_jobs SET job_state = :s WHERE id = 'policy:idle'"),
                     {"s": pickle.dumps(state)})

    assert rewrite_moved_job_refs(d.store.engine) == ["policy:idle"]
    assert rewrite_moved_job_refs(d.store.engine) == []  # idempotent
    again = daemon(tmp_path)
    again.scheduler = paused_scheduler(again)
    again.sync_jobs()
    job = again.scheduler.get_job("policy:idle")
    assert job.next_run_time == first and job.func.__name__ == "sweep_policy_job"
    again.scheduler.shutdown(wait=False)
