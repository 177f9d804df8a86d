"""The sweep graph's branches and its data path: real sweeps against moto, the path read from the
`sweep path` log line run_sweep writes from the graph's own stream of node updates."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.engine.approvals import thread_config
from costwarden.agent.engine.checkpoints import open_checkpointer, thread_ids
from costwarden.agent.engine.graph import after_approve, after_detect, after_guard, build_graph
from costwarden.agent.engine.nodes.stream import ObservationStream, StreamConsumed
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies, load_policy_file
from costwarden.state.domain import Observation, Resource
from costwarden.state.store import Store
from tests.fakes.moto_server import mutating

UPSTREAM = ["collect", "detect", "explain", "plan", "guard"]
POLICY = """
policies:
  - name: idle-gpus
    resource: aws.ec2
    mode: {mode}
    filters: [{{type: idle-gpu, lookback_days: 7}}]
    actions: [stop]
    limits:
      max_monthly_usd_per_auto_action: 50000
      approval_environments: {envs}
"""


def _settings(state_dir: Path, **kw) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=DEMO_REGIONS), **kw)


def _policy(tmp_path: Path, mode: str, envs: str = "[prod]"):
    (tmp_path / "p.yml").write_text(POLICY.format(mode=mode, envs=envs))
    return load_policy_file(tmp_path / "p.yml")


def _sweep(caplog, settings: Settings, policies, *, dry_run: bool):
    with caplog.at_level(logging.DEBUG, logger="costwarden.sweep"):
        result = run_sweep(settings, policies, dry_run=dry_run)
    [path] = [r.nodes for r in caplog.records if r.getMessage() == "sweep path" and r.run_id == result.run_id]
    return result, path


# --- the branches, through real sweeps ---------------------------------------------------------
def test_a_sweep_that_finds_nothing_goes_from_detect_straight_to_record(aws, state_dir, caplog, no_costwarden_env):
    store = Store(_settings(state_dir).db_url)
    result, path = _sweep(caplog, _settings(state_dir), load_policies([]), dry_run=True)  # an empty account
    assert path == ["collect", "detect", "record"]  # neither explain nor plan nor guard
    assert result.findings == [] and result.actions == [] and result.status == "done"
    assert store.get_run(result.run_id).status == "done"  # record still closed the run
    assert [d for d in store.decisions(run_id=result.run_id) if d.stage == "guard"] == []


def test_a_dry_run_with_findings_neither_asks_nor_acts(aws, state_dir, caplog, tmp_path, no_costwarden_env):
    seed_estate(aws.endpoint)
    aws.clear_calls()
    result, path = _sweep(caplog, _settings(state_dir), _policy(tmp_path, "auto"), dry_run=True)
    assert path == [*UPSTREAM, "record"]
    assert len(result.findings) == 3 and {a.status for a in result.actions} == {"dry_run"}
    assert mutating(aws.calls) == []
    assert not _settings(state_dir).checkpoint_path.exists()  # nothing waits, so nothing was checkpointed


def test_approve_mode_asks_and_never_acts(aws, state_dir, caplog, tmp_path, no_costwarden_env):
    seed_estate(aws.endpoint)
    settings = _settings(state_dir, dry_run=False)
    result, path = _sweep(caplog, settings, _policy(tmp_path, "approve"), dry_run=False)
    assert path == [*UPSTREAM, "approve", "record"]
    assert {a.status for a in result.actions} == {"awaiting_approval"}
    assert "StopInstances" not in aws.calls

    # the sweep's own thread left no checkpoint; each waiting action has its paused thread
    with open_checkpointer(settings) as saver:
        assert list(saver.list({"configurable": {"thread_id": result.run_id}})) == []
        assert sorted(thread_ids(saver)) == sorted(thread_config(a.id)["configurable"]["thread_id"]
                                                   for a in result.actions)


def test_auto_mode_with_a_prod_instance_asks_for_it_and_acts_on_the_rest(aws, state_dir, caplog, tmp_path,
                                                                         no_costwarden_env):
    seed_estate(aws.endpoint)
    result, path = _sweep(caplog, _settings(state_dir, dry_run=False), _policy(tmp_path, "auto"), dry_run=False)
    assert path == [*UPSTREAM, "approve", "act", "record"]
    assert sorted(a.status for a in result.actions) == ["awaiting_approval", "done", "done"]
    assert mutating(aws.calls).count("StopInstances") == 2


def test_auto_mode_with_nothing_to_ask_skips_approve(aws, state_dir, caplog, tmp_path, no_costwarden_env):
    seed_estate(aws.endpoint)
    settings = _settings(state_dir, dry_run=False)
    result, path = _sweep(caplog, settings, _policy(tmp_path, "auto", envs="[]"), dry_run=False)
    assert path == [*UPSTREAM, "act", "record"]
    assert [a.status for a in result.actions] == ["done"] * 3
    assert not settings.checkpoint_path.exists()


# --- the routing, as pure functions --------------------------------------------------------------
def _a(decision: str, status: str) -> dict:
    return {"decision": decision, "status": status}


@pytest.mark.parametrize("state,expected", [
    ({"findings": []}, "record"),
    ({}, "record"),
    ({"findings": [{"id": "f1"}]}, "explain"),
])
def test_after_detect(state, expected):
    assert after_detect(state) == expected


@pytest.mark.parametrize("actions,dry_run,guard_to,approve_to", [
    ([], False, "record", "record"),
    ([_a("report", "reported"), _a("skip", "skipped")], False, "record", "record"),
    ([_a("needs_approval", "awaiting_approval")], False, "approve", "record"),
    ([_a("needs_approval", "awaiting_approval"), _a("auto", "planned")], False, "approve", "act"),
    ([_a("auto", "planned")], False, "act", "act"),
    ([_a("auto", "dry_run"), _a("needs_approval", "dry_run")], True, "record", "record"),
    ([_a("auto", "planned")], True, "record", "record"),  # a dry run never reaches act, whatever the statuses say
])
def test_after_guard_and_after_approve(actions, dry_run, guard_to, approve_to):
    state = {"actions": actions, "dry_run": dry_run}
    assert (after_guard(state), after_approve(state)) == (guard_to, approve_to)


def test_the_compiled_graph_has_exactly_these_branches_and_no_checkpointer():
    graph = build_graph()
    assert graph.checkpointer is None
    edges = {(e.source, e.target, e.conditional) for e in graph.get_graph().edges}
    assert edges == {
        ("__start__", "collect", False), ("collect", "detect", False),
        ("detect", "explain", True), ("detect", "record", True),
        ("explain", "plan", False), ("plan", "guard", False),
        ("guard", "approve", True), ("guard", "act", True), ("guard", "record", True),
        ("approve", "act", True), ("approve", "record", True),
        ("act", "record", False), ("record", "__end__", False),
    }


# --- the stream that carries observations -------------------------------------------------------
def _obs(n: int) -> Observation:
    return Observation(resource=Resource(provider="aws", account="1", region="r", resource_type="aws.ec2",
                                         resource_id=f"i-{n}", kind="g5.xlarge"))


def test_a_stream_is_read_once_and_lazily_and_a_second_read_says_so():
    pulled: list[int] = []

    def source():
        for n in range(3):
            pulled.append(n)
            yield _obs(n)

    stream = ObservationStream("idle-gpus", source())
    assert pulled == []  # nothing is read before detect reads it
    it = iter(stream)
    assert next(it).resource.resource_id == "i-0" and pulled == [0]  # one at a time, as detect asks
    assert [o.resource.resource_id for o in it] == ["i-1", "i-2"]
    with pytest.raises(StreamConsumed, match="'idle-gpus' were already read"):
        iter(stream)
    with pytest.raises(TypeError, match="cannot be checkpointed"):
        pickle.dumps(ObservationStream("idle-gpus", iter(())))
