"""Checkpoints of finished approval threads go after `checkpoint_retention_days`; paused ones never.

A live approve-mode sweep of the demo estate (moto, real boto3) leaves three paused approval
threads; one is approved (and executed), one rejected, one left waiting. Then pruning runs as if
days had passed, on SQLite and on the local PostgreSQL (skipped when that server is not there).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from pydantic import ValidationError

from costwarden.agent.config import AwsSettings, ConfigError, Settings, load_settings
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.engine.approvals import build_approval_graph, decide, prune_finished, thread_config
from costwarden.agent.engine.checkpoints import open_checkpointer, thread_ids
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.store import Store
from tests.pg import throwaway_database
from tests.test_approvals import POLICY


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    pytest.importorskip("langgraph.checkpoint.postgres")
    with throwaway_database("cw_prune") as url:
        yield url


def _tid(action_id: str) -> str:
    return thread_config(action_id)["configurable"]["thread_id"]


def _paused(settings: Settings, action_id: str) -> bool:
    with open_checkpointer(settings) as saver:
        return bool(build_approval_graph(saver).get_state(thread_config(action_id)).interrupts)


def _threads(settings: Settings) -> set[str]:
    with open_checkpointer(settings) as saver:
        return set(thread_ids(saver))


class _Legacy(TypedDict, total=False):
    n: int


def _legacy_sweep_thread(settings: Settings, thread_id: str) -> None:
    """A thread as sweeps wrote them before this change: checkpointed, finished, never resumed."""
    g = StateGraph(_Legacy)
    g.add_node("record", lambda s: {"n": 1})
    g.add_edge(START, "record")
    g.add_edge("record", END)
    with open_checkpointer(settings) as saver:
        g.compile(checkpointer=saver).invoke({"n": 0}, {"configurable": {"thread_id": thread_id}})


def test_finished_threads_go_after_the_retention_and_paused_ones_never(aws, tmp_path, database_url,
                                                                       no_costwarden_env):
    ids = seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, dry_run=False,
                        aws=AwsSettings(regions=DEMO_REGIONS), checkpoint_retention_days=7)
    store = Store(settings.db_url)
    result = run_sweep(settings, load_policy_file(tmp_path / "p.yml"), dry_run=False, store=store)
    by_name = {n: next(a.id for a in result.actions if a.args["instance_id"] == ids[n])
               for n in ("llm-finetune-01", "llm-finetune-02", "embeddings-batch")}
    approved, rejected, waiting = by_name["llm-finetune-01"], by_name["llm-finetune-02"], by_name["embeddings-batch"]
    assert decide(settings, store, approved, actor="cli:alice", decision="approve") == "approved"
    assert decide(settings, store, rejected, actor="cli:alice", decision="reject") == "rejected"
    assert store.get_action(approved).status == "done"
    _legacy_sweep_thread(settings, "run_20250101T000000Z_0a0b0c")
    everything = {_tid(approved), _tid(rejected), _tid(waiting), "run_20250101T000000Z_0a0b0c"}
    assert _threads(settings) == everything

    now = datetime.now(timezone.utc)
    assert prune_finished(settings, now=now + timedelta(days=6, hours=23)) == []  # inside the retention
    assert _threads(settings) == everything

    removed = prune_finished(settings, now=now + timedelta(days=7, minutes=1))
    assert sorted(removed) == sorted([_tid(approved), _tid(rejected), "run_20250101T000000Z_0a0b0c"])
    assert _threads(settings) == {_tid(waiting)}
    with open_checkpointer(settings) as saver:
        assert list(saver.list(thread_config(approved))) == []  # every checkpoint of the thread, not the latest
    assert _paused(settings, waiting)

    # a paused thread stays however old it is, and still resumes
    assert prune_finished(settings, now=now + timedelta(days=3650)) == []
    assert _paused(settings, waiting)
    aws.clear_calls()
    assert decide(settings, store, waiting, actor="cli:alice", decision="approve") == "approved"
    assert store.get_action(waiting).status == "done" and aws.calls.count("StopInstances") == 1
    store.close()


def test_nothing_to_prune_creates_no_checkpoint_file(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    assert prune_finished(settings) == []
    assert not settings.checkpoint_path.exists()


def test_the_daemon_prunes_in_its_hourly_housekeeping(aws, tmp_path, no_costwarden_env):
    from costwarden.agent.server.daemon import Daemon

    ids = seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    settings = Settings(state_dir=tmp_path / "state", dry_run=False, aws=AwsSettings(regions=DEMO_REGIONS),
                        policies=[tmp_path / "p.yml"], checkpoint_retention_days=0)
    store = Store(settings.db_url)
    result = run_sweep(settings, load_policy_file(tmp_path / "p.yml"), dry_run=False, store=store)
    rejected = next(a.id for a in result.actions if a.args["instance_id"] == ids["llm-finetune-02"])
    decide(settings, store, rejected, actor="cli:alice", decision="reject")
    Daemon(settings, host="127.0.0.1", port=0)._housekeeping()
    assert _tid(rejected) not in _threads(settings)
    assert _threads(settings) == {_tid(a.id) for a in result.actions if a.id != rejected}
    store.close()


@pytest.mark.parametrize("value", [-1, 4000, "soon"])
def test_the_retention_setting_is_checked(value, tmp_path, monkeypatch, no_costwarden_env):
    with pytest.raises(ValidationError):
        Settings(state_dir=tmp_path, checkpoint_retention_days=value)
    monkeypatch.setenv("COSTWARDEN_CHECKPOINT_RETENTION_DAYS", str(value))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "\n" not in str(err.value) and "COSTWARDEN_CHECKPOINT_RETENTION_DAYS" in str(err.value)


def test_the_retention_setting_defaults_to_a_week(tmp_path, no_costwarden_env):
    assert Settings(state_dir=tmp_path).checkpoint_retention_days == 7
    assert "never deleted" in (Settings.model_fields["checkpoint_retention_days"].description or "")

