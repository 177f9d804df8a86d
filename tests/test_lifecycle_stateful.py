"""Every approved action runs exactly once: random interleavings, two stores, crashes, restarts.

A Hypothesis state machine drives votes (by allowed approvers, and by "costwarden", which the
store must refuse), expiries, clock ticks, claims, executions, crashes mid-execution (a store
dropped after its claim, with or without the cloud call made), protections, a policy removed, and
restarts (new Store objects on the same database, then start-up reconciliation), across TWO
Store objects on one database: SQLite, and the local PostgreSQL when it is there. The tool is a
fake registered ToolSpec whose "cloud" is a dict, so every execution is counted.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, settings as hsettings, strategies as st  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test  # noqa: E402

from costwarden.agent.config import Settings  # noqa: E402
from costwarden.agent.engine.execute import execute_action  # noqa: E402
from costwarden.agent.engine.reconcile import reconcile_pending  # noqa: E402
from costwarden.policies.loader import load_policy_file  # noqa: E402
from costwarden.state.clock import clock_at  # noqa: E402
from costwarden.state.domain import Finding, PlannedAction  # noqa: E402
from costwarden.state.lifecycle import SYSTEM_ACTOR, ActionStatus, allowed  # noqa: E402
from costwarden.state.models import ActionRow, ApprovalRow  # noqa: E402
from costwarden.state.store import Store  # noqa: E402
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool, tools  # noqa: E402

TOOL = "test.lifecycle.stop"
CLOUD: dict[str, str] = {}  # target -> "stopped"
RUNS: dict[str, int] = {}  # target -> how many times the tool's run was called


def _run(_clients: Any, *, target: str) -> ToolOutcome:
    RUNS[target] = RUNS.get(target, 0) + 1
    CLOUD[target] = "stopped"
    return ToolOutcome(True, {"state": "stopped"})


def _observe(_clients: Any, *, target: str) -> dict[str, Any]:
    return {"state": CLOUD.get(target, "running")}


if TOOL not in tools:
    register_tool(ToolSpec(name=TOOL, provider="aws", run=_run, observe=_observe,
                           is_done=lambda s: s.get("state") == "stopped"))

POLICY = """
policies:
  - name: p
    resource: aws.ec2
    mode: approve
    filters: [{type: idle-gpu}]
    actions: [stop]
    approval:
      approvers: [U012AB3CD, U045EF6GH]
"""
ALLOWED = ("slack:U1", "slack:U2")
ACTORS = (*ALLOWED, SYSTEM_ACTOR)
N_ACTIONS = 3


def reachable() -> dict[str | None, set[str]]:
    """Every status reachable from each status by one or more transitions of the table."""
    step = allowed()
    out: dict[str | None, set[str]] = {}
    for start in step:
        seen: set[str] = set()
        todo = list(step[start])
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(step.get(s, ()))
        out[start] = seen
    return out


REACHABLE = reachable()
DIRECT = allowed()


class NoCloud:
    """Providers for the fake tool: it needs no clients, and this is a live (not dry-run) daemon."""

    dry_run = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def clients_for(self, _provider: str) -> None:
        return None


@dataclass
class World:
    url: str
    settings: Settings
    policy: Any
    seq: list[int] = field(default_factory=lambda: [0])


def make_machine(world: World) -> type[RuleBasedStateMachine]:
    class Lifecycle(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            tok = secrets.token_hex(4)
            self.now = datetime.now(timezone.utc)
            self.stores = [Store(world.url), Store(world.url)]
            self.policies: dict[str, Any] = {"p": world.policy}
            self.ids = [f"a{tok}{i}" for i in range(N_ACTIONS)]
            self.seen: dict[str, str] = {}
            store = self.stores[0]
            with clock_at(self.now):
                store.start_run(f"r{tok}", dry_run=False, policies=["p"], trigger="test")
                store.add_findings(f"r{tok}", [Finding(f"f{tok}", "p", "idle-gpu", "aws", "1", "us-east-1", "i-1",
                                                       "aws.ec2", {}, Decimal(1), "low")])
                for i, aid in enumerate(self.ids):
                    store.add_action(f"r{tok}", PlannedAction(
                        aid, f"f{tok}", "p", "stop", TOOL, {"target": aid}, Decimal(1), f"aws:1:us-east-1:{aid}",
                        decision="needs_approval", status=ActionStatus.AWAITING_APPROVAL), policy_hash="h")
                    store.request_approval(aid, ttl=timedelta(hours=2), policy="p", required=2 if i == 0 else 1)
            self._observe_all()

        # --- helpers ---------------------------------------------------------------------------
        def _rows(self) -> dict[str, ActionRow]:
            return {aid: self.stores[0].get_action(aid) for aid in self.ids}

        def _observe_all(self, *, direct: bool = False) -> None:
            """Each status change since the last look follows the table (one edge when `direct`)."""
            for aid, row in self._rows().items():
                prev = self.seen.get(aid)
                if prev is not None and row.status != prev:
                    table = DIRECT if direct else REACHABLE
                    assert row.status in table.get(ActionStatus(prev), ()), f"{aid}: {prev} -> {row.status}"
                self.seen[aid] = row.status

        def _execute(self, store: Store, aid: str) -> str:
            row = store.get_action(aid)
            a = PlannedAction(row.id, row.finding_id, row.policy, row.action, row.tool, row.args,
                              row.projected_monthly_savings_usd, row.resource_key, decision=row.decision,
                              status=row.status)
            return execute_action(store, NoCloud(world.settings), a, run_id=row.run_id, policy_hash="h",
                                  actor="slack:U1")

        def _crash(self, i: int) -> None:
            self.stores[i].close()  # a killed process: its connections go, nothing more is written
            self.stores[i] = Store(world.url)

        # --- rules -----------------------------------------------------------------------------
        @rule(s=st.integers(0, 1), i=st.integers(0, N_ACTIONS - 1), actor=st.sampled_from(ACTORS),
              decision=st.sampled_from(("approve", "reject", "snooze")), run_now=st.booleans())
        def vote(self, s: int, i: int, actor: str, decision: str, run_now: bool) -> None:
            aid = self.ids[i]
            with clock_at(self.now):
                if actor == SYSTEM_ACTOR:
                    with pytest.raises(ValueError, match="never votes"):
                        self.stores[s].vote(aid, actor=actor, decision=decision, now=self.now)
                    return
                outcome = self.stores[s].vote(aid, actor=actor, decision=decision, now=self.now,
                                              snooze=timedelta(hours=1))
                self._observe_all(direct=True)
                if outcome == "approved" and run_now:  # the follow-up thread, when it is not killed first
                    assert self._execute(self.stores[s], aid) in ("done", "already-claimed")

        @rule(hours=st.sampled_from((0.5, 1.0, 2.5)))
        def tick(self, hours: float) -> None:
            self.now += timedelta(hours=hours)

        @rule(s=st.integers(0, 1))
        def expire(self, s: int) -> None:
            with clock_at(self.now):
                expired = self.stores[s].expire_due(now=self.now)
            self._observe_all(direct=True)
            for aid in expired:
                approval, action = self.stores[0].get_approval(aid)
                assert approval.status == "expired" and action.status == ActionStatus.EXPIRED
                assert approval.expires_at.replace(tzinfo=timezone.utc) <= self.now

        @rule(s=st.integers(0, 1), i=st.integers(0, N_ACTIONS - 1))
        def execute(self, s: int, i: int) -> None:
            """A retry, a double click's thread, another replica: only an approved action runs."""
            aid = self.ids[i]
            before = self.stores[s].get_action(aid).status
            with clock_at(self.now):
                result = self._execute(self.stores[s], aid)
            assert (result == "done") == (before == ActionStatus.APPROVED)

        @rule(s=st.integers(0, 1), i=st.integers(0, N_ACTIONS - 1), called=st.booleans())
        def crash_mid_execution(self, s: int, i: int, called: bool) -> None:
            """Killed after the claim, before or after the cloud call, before the outcome is written."""
            aid = self.ids[i]
            with clock_at(self.now):
                won = self.stores[s].claim_action(aid, before_state={}, run_id=None, policy="p", policy_hash="h")
                if won and called:
                    _run(None, target=aid)
            self._crash(s)

        @rule(s=st.integers(0, 1))
        def crash(self, s: int) -> None:
            self._crash(s)

        @rule(i=st.integers(0, N_ACTIONS - 1))
        def protect(self, i: int) -> None:
            with clock_at(self.now):
                self.stores[1].protect(f"aws:1:us-east-1:{self.ids[i]}", actor="slack:U2", reason="test")

        @rule()
        def drop_policy(self) -> None:
            self.policies = {}

        @rule()
        def restart(self) -> None:
            """Both processes die; a new one opens the database and reconciles before anything else."""
            self._crash(0)
            self._crash(1)
            with clock_at(self.now):
                reconcile_pending(self.stores[0], NoCloud(world.settings), policies=self.policies, now=self.now)
            self._observe_all()
            for aid, row in self._rows().items():
                assert row.status not in (ActionStatus.APPROVED, ActionStatus.PENDING), (aid, row.status)
                if row.status == ActionStatus.WITHDRAWN:
                    reasons = [d.reason for d in self.stores[0].decisions(action_id=aid) if d.decision == "withdrawn"]
                    assert reasons and reasons[0].startswith("approved, but")

        # --- invariants ------------------------------------------------------------------------
        @invariant()
        def at_most_once(self) -> None:
            if not hasattr(self, "ids"):
                return
            for aid, row in self._rows().items():
                assert RUNS.get(aid, 0) <= 1, f"{aid} executed {RUNS[aid]} times"
                if row.status == ActionStatus.DONE:
                    assert RUNS.get(aid, 0) == 1
                if row.status in (ActionStatus.REJECTED, ActionStatus.EXPIRED, ActionStatus.WITHDRAWN,
                                  ActionStatus.AWAITING_APPROVAL, ActionStatus.APPROVED):
                    assert RUNS.get(aid, 0) == 0, f"{aid} ran but is {row.status}"

        @invariant()
        def nobody_votes_as_costwarden(self) -> None:
            if not hasattr(self, "ids"):
                return
            with self.stores[0].session() as s:
                for votes, decided_by in s.query(ApprovalRow.votes, ApprovalRow.decided_by).filter(
                        ApprovalRow.action_id.in_(self.ids)):
                    assert SYSTEM_ACTOR not in (votes or []) and decided_by != SYSTEM_ACTOR

        @invariant()
        def statuses_follow_the_table(self) -> None:
            if hasattr(self, "ids"):
                self._observe_all()

        def teardown(self) -> None:
            for store in getattr(self, "stores", []):
                store.close()

    return Lifecycle


def _world(url: str, tmp: Path) -> World:
    (tmp / "p.yml").write_text(POLICY)
    [policy] = load_policy_file(tmp / "p.yml")
    # checkpoints of the approval threads reconcile resumes live in SQLite under state_dir
    return World(url, Settings(state_dir=tmp / "state", dry_run=False), policy)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cw.db"
        return
    from tests.pg import throwaway_database

    with throwaway_database("cw_lifecycle") as url:
        yield url


def test_every_approved_action_runs_at_most_once_and_none_is_forgotten(db_url, tmp_path, no_costwarden_env):
    machine = make_machine(_world(db_url, tmp_path))
    run_state_machine_as_test(machine, settings=hsettings(
        max_examples=40, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
