"""The action lifecycle table, expiry as the clock's own transition, and start-up settlement of
approved actions a crash cut off before their claim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event

from costwarden.agent.config import Settings, SlackSettings
from costwarden.agent.engine.reconcile import reconcile_pending
from costwarden.policies.loader import load_policy_file
from costwarden.state.clock import utcnow
from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.lifecycle import IllegalTransition, Transition, TRANSITIONS, markdown_table
from costwarden.state.store import Store
from tests.fakes.slack import FakeSlack
from tests.test_lifecycle_stateful import CLOUD, POLICY, RUNS, TOOL, NoCloud

DOCS = Path(__file__).resolve().parents[1] / "docs" / "concepts" / "approvals.md"


def seed(store: Store, aid: str, *, ttl_hours: float = 2, status: str = "awaiting_approval") -> None:
    store.start_run(f"r-{aid}", dry_run=False, policies=["p"], trigger="test")
    store.add_findings(f"r-{aid}", [Finding(f"f-{aid}", "p", "idle-gpu", "aws", "1", "us-east-1", aid, "aws.ec2",
                                            {}, Decimal(1), "low")])
    store.add_action(f"r-{aid}", PlannedAction(aid, f"f-{aid}", "p", "stop", TOOL, {"target": aid}, Decimal(1),
                                               f"aws:1:us-east-1:{aid}", decision="needs_approval", status=status),
                     policy_hash="h")
    if status == "awaiting_approval":
        store.request_approval(aid, ttl=timedelta(hours=ttl_hours), policy="p")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cw.db"
        return
    from tests.pg import throwaway_database

    with throwaway_database("cw_lifecycle") as u:
        yield u


def test_the_docs_list_every_transition():
    text = DOCS.read_text()
    assert markdown_table() in text, "docs/concepts/approvals.md: paste state.lifecycle.markdown_table() again"
    assert all(f"`{t}`" in text for t in TRANSITIONS)


def test_an_illegal_status_change_is_a_clear_error(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/cw.db")
    seed(store, "a1")
    with pytest.raises(IllegalTransition, match=r"action a1: cannot complete from awaiting_approval"):
        store.complete_action("a1", ok=True, after_state={}, error=None, run_id=None, policy="p", policy_hash="h")
    with pytest.raises(IllegalTransition, match=r"no transition from awaiting_approval to done"):
        store.set_action_status("a1", "done")
    with pytest.raises(IllegalTransition, match="cannot claim"):
        store.claim_action("a1", from_statuses=("awaiting_approval",), before_state=None, run_id=None, policy="p",
                           policy_hash="h")
    with pytest.raises(ValueError, match="cannot end in 'approved'"):
        seed(store, "a2", status="approved")
    assert store.get_action("a1").status == "awaiting_approval"
    assert Transition.EXPIRE in TRANSITIONS and Transition.SNOOZE in TRANSITIONS


def test_costwarden_never_votes(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/cw.db")
    seed(store, "a1")
    for decision in ("approve", "reject", "snooze"):
        with pytest.raises(ValueError, match="never votes"):
            store.vote("a1", actor="costwarden", decision=decision)
    with pytest.raises(ValueError, match="unknown decision"):
        store.vote("a1", actor="slack:U1", decision="maybe")


def test_expiry_racing_a_snooze_never_approves(url):
    """The bug on main: expiry was an approve vote by "costwarden"; a snooze committed between its
    read and its write left the action approved with votes ['costwarden']. Here a second Store
    snoozes just before the expiry's UPDATE reaches the database."""
    a, b = Store(url), Store(url)
    seed(a, "a1", ttl_hours=1)
    before, later = utcnow() + timedelta(minutes=59), utcnow() + timedelta(hours=2)
    fired: list[str] = []

    @event.listens_for(a.engine, "before_cursor_execute")
    def snooze_first(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE APPROVALS") and not fired:
            # the click came in just before the window closed, and commits after the expiry's read
            fired.append(b.vote("a1", actor="slack:U1", decision="snooze", now=before, snooze=timedelta(hours=24)))

    assert a.expire_due(now=later) == []
    assert fired == ["snoozed"]
    approval, action = a.get_approval("a1")
    assert (approval.status, action.status, approval.votes) == ("pending", "awaiting_approval", [])
    # and a due request is expired by the clock, with no vote cast
    event.remove(a.engine, "before_cursor_execute", snooze_first)
    assert a.expire_due(now=later + timedelta(hours=30)) == ["a1"]
    approval, action = a.get_approval("a1")
    assert (approval.status, action.status, approval.votes) == ("expired", "expired", [])
    assert b.vote("a1", actor="slack:U1", decision="approve") == "already-expired"


@pytest.fixture
def daemon(tmp_path, no_costwarden_env):
    slack = FakeSlack()
    (tmp_path / "p.yml").write_text(POLICY)
    [policy] = load_policy_file(tmp_path / "p.yml")
    settings = Settings(state_dir=tmp_path / "state", dry_run=False,
                        slack=SlackSettings(bot_token=slack.token, channel="#finops", base_url=slack.base_url))
    yield settings, {"p": policy}, slack
    slack.stop()


def approved_then_killed(store: Store, aid: str, **kw: object) -> None:
    """A click committed `approved`; the process died before its follow-up thread claimed it."""
    seed(store, aid, **kw)
    store.set_approval_message(aid, channel="C0APPROVALS", ts="1700000000.000001")
    assert store.vote(aid, actor="slack:U1", decision="approve") == "approved"


def test_an_approved_action_cut_off_before_its_claim_runs_once_at_start_up(daemon):
    settings, policies, slack = daemon
    store = Store(settings.db_url)
    approved_then_killed(store, "run-me")
    since = utcnow() - timedelta(hours=1)
    assert [r.id for r in store.recent_actions_on("aws:1:us-east-1:run-me", since)] == ["run-me"]

    counts = reconcile_pending(Store(settings.db_url), NoCloud(settings), policies=policies)
    assert counts["executed"] == 1 and RUNS["run-me"] == 1 and CLOUD["run-me"] == "stopped"
    assert store.get_action("run-me").status == "done"
    trail = [(d.stage, d.decision) for d in store.decisions(action_id="run-me")]
    assert ("execute", "claimed") in trail and ("verify", "done") in trail
    update = [args for m, args in slack.calls if m == "chat.update"]
    assert update and "Approved by slack:U1" in json.dumps(update[-1])
    assert reconcile_pending(Store(settings.db_url), NoCloud(settings), policies=policies)["executed"] == 0
    assert RUNS["run-me"] == 1


@pytest.mark.parametrize("case", ["expired", "policy-gone", "protected"])
def test_an_approved_action_that_may_no_longer_run_is_withdrawn_with_its_reason(daemon, case):
    settings, policies, slack = daemon
    store = Store(settings.db_url)
    aid = f"w-{case}"
    approved_then_killed(store, aid, ttl_hours=1)
    now = utcnow() + timedelta(hours=2 if case == "expired" else 0)
    if case == "policy-gone":
        policies = {}
    if case == "protected":
        store.protect(f"aws:1:us-east-1:{aid}", actor="slack:U2", reason="test")
    counts = reconcile_pending(store, NoCloud(settings), policies=policies, now=now)
    assert counts["withdrawn"] == 1 and RUNS.get(aid, 0) == 0
    assert store.get_action(aid).status == "withdrawn"
    [reason] = [d.reason for d in store.decisions(action_id=aid) if d.decision == "withdrawn"]
    assert {"expired": "window has since closed", "policy-gone": "no longer loaded", "protected": "protected"}[case] in reason
    update = [args for m, args in slack.calls if m == "chat.update"]
    assert update and "Withdrawn" in json.dumps(update[-1]) and "Nothing was changed" in json.dumps(update[-1])
    # it no longer holds its resource
    assert store.recent_actions_on(f"aws:1:us-east-1:{aid}", utcnow() - timedelta(hours=1)) == []


def test_an_approved_action_does_not_hold_its_resource_for_ever(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/cw.db")
    seed(store, "a1", ttl_hours=1)
    assert store.vote("a1", actor="slack:U1", decision="approve") == "approved"
    key = "aws:1:us-east-1:a1"
    assert store.recent_actions_on(key, utcnow() + timedelta(hours=3)) != []  # its approval window is still open
    from costwarden.state.clock import clock_at

    with clock_at(utcnow() + timedelta(hours=3)):  # window closed, outside the cooldown
        assert store.recent_actions_on(key, utcnow() - timedelta(hours=1)) == []
        assert store.recent_actions_on(key, utcnow() - timedelta(hours=5)) != []  # inside a longer cooldown
