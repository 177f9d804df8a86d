"""LangGraph checkpoints on PostgreSQL: a click on one replica resumes the thread another opened.

Real psycopg and langgraph-checkpoint-postgres against the local PostgreSQL (a throwaway
database per test, dropped afterwards), real boto3 against moto for what gets executed, real
slack-sdk against the fake Slack, real signed requests to replica B's interactions route.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from costwarden.agent.engine.approvals import build_approval_graph, decide, thread_config
from costwarden.agent.config import AwsSettings, Settings, SlackSettings
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.server.http import HttpServer
from costwarden.agent.server.slack_http import InteractionHandler
from costwarden.agent.engine.checkpoints import open_checkpointer, pg_conninfo, thread_ids
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.store import Store, StoreError
from tests.fakes.slack import TEAM_ID, FakeSlack
from tests.pg import throwaway_database
from tests.test_approvals import ALICE, BOB, POLICY, SECRET, TOKEN, click
from costwarden.tools.slack import APPROVE

FALLBACK = "no checkpoint here"  # agent/engine/approvals.py logs this when it restarts a thread from the store


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, as a SQLAlchemy URL; dropped afterwards."""
    pytest.importorskip("langgraph.checkpoint.postgres",
                        reason="langgraph-checkpoint-postgres not installed (pip install '.[postgres]')")
    with throwaway_database("cw_ckpt") as url:
        yield url


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(TOKEN)
    yield fake
    fake.stop()


def replica(state_dir: Path, database_url: str, slack: FakeSlack | None = None) -> Settings:
    extra = {} if slack is None else {"slack": SlackSettings(bot_token=TOKEN, signing_secret=SECRET, team_id=TEAM_ID,
                                                             channel="#finops", base_url=slack.base_url)}
    return Settings(state_dir=state_dir, database_url=database_url, dry_run=False,
                    aws=AwsSettings(regions=DEMO_REGIONS), **extra)


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if FALLBACK in r.getMessage()]


# --- the URL translation: pure ----------------------------------------------------------------
@pytest.mark.parametrize("url,expected", [
    ("postgresql+psycopg://postgres@127.0.0.1:5432/costwarden",
     {"host": "127.0.0.1", "port": "5432", "user": "postgres", "dbname": "costwarden"}),
    # percent-encoded user and password with a quote, a backslash and a space; query parameters pass through
    ("postgresql+psycopg://cw%40ops:p%27w%5C%20d@db:5433/cw?sslmode=require&application_name=costwarden",
     {"host": "db", "port": "5433", "user": "cw@ops", "password": "p'w\\ d", "dbname": "cw",
      "sslmode": "require", "application_name": "costwarden"}),
    ("postgresql:///cw?host=/var/run/postgresql", {"dbname": "cw", "host": "/var/run/postgresql"}),
])
def test_a_sqlalchemy_postgresql_url_becomes_the_libpq_conninfo_psycopg_reads(url, expected):
    conninfo_to_dict = pytest.importorskip("psycopg.conninfo").conninfo_to_dict
    conninfo = pg_conninfo(url)
    assert conninfo is not None and conninfo_to_dict(conninfo) == expected


@pytest.mark.parametrize("url", [None, "", "sqlite:///state/costwarden.db", "mysql+pymysql://u@h/db"])
def test_other_databases_keep_sqlite_checkpoints(url, tmp_path):
    assert pg_conninfo(url) is None
    settings = Settings(state_dir=tmp_path / "s", database_url=url or None)
    with open_checkpointer(settings) as saver:
        assert type(saver).__name__ == "SqliteSaver"
    assert settings.checkpoint_path.exists()


def test_a_missing_package_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "langgraph.checkpoint.postgres", None)  # as if not installed
    settings = Settings(state_dir=tmp_path, database_url="postgresql+psycopg://cw:s3cret@127.0.0.1:5432/cw")
    with pytest.raises(StoreError) as err, open_checkpointer(settings):
        pass
    msg = str(err.value)
    assert "\n" not in msg and "s3cret" not in msg
    assert "langgraph-checkpoint-postgres is not installed" in msg and "costwarden[postgres]" in msg
    assert not settings.checkpoint_path.exists()  # no silent fall-back to per-replica SQLite


def test_an_unreachable_database_is_one_clear_line_without_the_password(tmp_path):
    pytest.importorskip("langgraph.checkpoint.postgres")
    settings = Settings(state_dir=tmp_path,
                        database_url="postgresql+psycopg://cw:s3cret@127.0.0.1:1/cw?connect_timeout=2")
    with pytest.raises(StoreError) as err, open_checkpointer(settings):
        pass
    msg = str(err.value)
    assert msg.startswith("cannot open LangGraph checkpoints on postgresql+psycopg://cw:***@127.0.0.1:1/cw")
    assert "\n" not in msg and "s3cret" not in msg


# --- two replicas -------------------------------------------------------------------------------
def test_a_click_on_another_replica_resumes_the_checkpointed_thread_and_executes_once(
        aws, slack, pg_url, tmp_path, no_costwarden_env, caplog):
    ids = seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    policies = load_policy_file(tmp_path / "p.yml")
    a, b = replica(tmp_path / "a", pg_url, slack), replica(tmp_path / "b", pg_url, slack)

    # replica A sweeps: three actions wait, each in its own approval thread, checkpointed in PostgreSQL
    result = run_sweep(a, policies, dry_run=False)
    target = next(x.id for x in result.actions if x.args["instance_id"] == ids["llm-finetune-01"])
    assert not a.checkpoint_path.exists() and not b.checkpoint_path.exists()
    with open_checkpointer(a) as saver:
        # only what waits for a human is checkpointed: the three approval threads, not the sweep
        assert saver.get_tuple({"configurable": {"thread_id": result.run_id}}) is None
        assert sorted(thread_ids(saver)) == sorted(thread_config(x.id)["configurable"]["thread_id"]
                                                   for x in result.actions)
        paused_at = saver.get_tuple(thread_config(target)).config["configurable"]["checkpoint_id"]

    # replica B, with its own empty state_dir, sees A's paused thread before anything resumes it
    with open_checkpointer(b) as saver:
        before = build_approval_graph(saver).get_state(thread_config(target))
    assert [i.value for i in before.interrupts] == [{"action_id": target}]
    assert before.config["configurable"]["checkpoint_id"] == paused_at and before.next == ("wait",)

    # the click lands on replica B
    store_b = Store(b.db_url)
    server = HttpServer("127.0.0.1", 0, {("POST", "/slack/interactions"):
                                         InteractionHandler(b, store_b, lambda: {p.name: p for p in policies},
                                                            background=False)})
    server.start()
    aws.clear_calls()
    try:
        with caplog.at_level(logging.INFO, logger="costwarden.approvals"):
            status, body = click({"server": server}, ALICE, APPROVE, target)
        assert status == 200 and body["text"].startswith("Approved")
        assert fallbacks(caplog) == []  # B did not restart the thread from the store
        assert aws.calls.count("StopInstances") == 1
        assert store_b.get_action(target).status == "done"

        # the thread B finished is A's: one input (a restart would add a second), A's pause in its history
        with open_checkpointer(b) as saver:
            history = list(saver.list(thread_config(target)))
            after = build_approval_graph(saver).get_state(thread_config(target))
        assert [h.metadata.get("source") for h in history].count("input") == 1
        assert paused_at in {h.config["configurable"]["checkpoint_id"] for h in history}
        assert after.values["decision"] == "approved" and after.values["actor"] == f"slack:{ALICE}"
        assert after.next == () and not after.interrupts

        # a second approval, from replica A this time, executes nothing
        assert decide(a, Store(a.db_url), target, actor=f"slack:{BOB}", decision="approve") == "already-approved"
        assert aws.calls.count("StopInstances") == 1
        assert not b.checkpoint_path.exists()
    finally:
        server.stop()
        store_b.engine.dispose()


def test_without_postgresql_checkpoints_stay_per_replica_and_the_other_replica_restarts_the_thread(
        aws, tmp_path, no_costwarden_env, caplog):
    """The contrast: a shared store but SQLite checkpoints. B finds no checkpoint and falls back."""
    ids = seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = replica(tmp_path / "a", shared), replica(tmp_path / "b", shared)
    result = run_sweep(a, load_policy_file(tmp_path / "p.yml"), dry_run=False)
    target = next(x.id for x in result.actions if x.args["instance_id"] == ids["llm-finetune-01"])
    assert a.checkpoint_path.exists()
    with open_checkpointer(b) as saver:
        assert not build_approval_graph(saver).get_state(thread_config(target)).interrupts

    aws.clear_calls()
    with caplog.at_level(logging.INFO, logger="costwarden.approvals"):
        assert decide(b, Store(shared), target, actor="cli:bob", decision="approve") == "approved"
    assert len(fallbacks(caplog)) == 1
    assert aws.calls.count("StopInstances") == 1  # the fallback still executes exactly once
    with open_checkpointer(b) as saver:
        history = list(saver.list(thread_config(target)))
    with open_checkpointer(a) as saver:
        paused_at = saver.get_tuple(thread_config(target)).config["configurable"]["checkpoint_id"]
    assert paused_at not in {h.config["configurable"]["checkpoint_id"] for h in history}
