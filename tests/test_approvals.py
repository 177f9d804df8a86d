"""Approvals as a security boundary: real slack-sdk against a fake Slack, real signed requests
posted to the daemon's interactions route, real boto3 against moto for what gets executed."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import update

from costwarden.agent.config import AwsSettings, Settings, SlackSettings
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.server.http import HttpServer
from costwarden.agent.server.slack_http import InteractionHandler
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.clock import utcnow
from costwarden.state.models import ApprovalRow
from costwarden.state.store import Store
from tests.fakes.slack import TEAM_ID, FakeSlack, interaction, sign
from costwarden.tools.slack import APPROVE, PROTECT, REJECT, SNOOZE

TOKEN, SECRET = "xoxb-test-token-0000", "8f14e45fceea167a5a36dedd4bea2543"
ALICE, BOB, EVE, CAROL = "U0ALICE", "U0BOB", "U0EVE", "U0CAROL"
POLICY = """
policies:
  - name: idle-gpus
    resource: aws.ec2
    mode: approve
    filters: [{type: idle-gpu}]
    actions: [stop]
    approval:
      approvers: [U0ALICE, U0BOB]
      approver_groups: [S0FINOPS]
"""


@pytest.fixture
def slack():
    fake = FakeSlack(TOKEN, groups={"S0FINOPS": [CAROL]})
    yield fake
    fake.stop()


@contextmanager
def live_world(aws, slack, tmp_path, database_url: str | None = None) -> Iterator[dict]:
    """A live (not dry-run) sweep of the demo estate in approve mode, its store on `database_url`
    (default: SQLite in the state dir), and the interactions endpoint serving clicks on it."""
    ids = seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    policies = load_policy_file(tmp_path / "p.yml")
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, dry_run=False,
                        aws=AwsSettings(regions=DEMO_REGIONS),
                        slack=SlackSettings(bot_token=TOKEN, signing_secret=SECRET, channel="#finops",
                                            base_url=slack.base_url, team_id=TEAM_ID))
    result = run_sweep(settings, policies, dry_run=False)
    store = Store(settings.db_url)
    handler = InteractionHandler(settings, store, lambda: {p.name: p for p in policies}, background=False)
    server = HttpServer("127.0.0.1", 0, {("POST", "/slack/interactions"): handler}, counters=handler.counters)
    server.start()
    aws.clear_calls()
    by_name = {ids[n]: n for n in ids}
    actions = {by_name[a.args["instance_id"]]: a.id for a in result.actions}
    try:
        yield {"settings": settings, "store": store, "server": server, "actions": actions, "ids": ids,
               "result": result}
    finally:
        server.stop()
        store.close()


@pytest.fixture
def world(aws, slack, tmp_path, no_costwarden_env):
    """Three actions wait for a click (live_world on SQLite)."""
    with live_world(aws, slack, tmp_path) as w:
        yield w


def click(world, user: str, button: str, action_id: str, *, ts: int | None = None, secret: str = SECRET,
          body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    body = body if body is not None else interaction(user, button, action_id)
    req = urllib.request.Request(f"http://127.0.0.1:{world['server'].port}/slack/interactions", data=body,
                                 headers=headers or sign(body, secret, ts), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def refusals(store: Store) -> list[str]:
    return [d.reason for d in store.decisions() if d.stage == "approval" and d.decision == "refused"]


def test_messages_posted_with_buttons_and_evidence(world, slack):
    posts = [args for m, args in slack.calls if m == "chat.postMessage"]
    assert len(posts) == 3 and all(p["channel"] == "#finops" for p in posts)
    blocks = json.dumps(posts[0]["blocks"])
    for text in ("Approve", "Reject", "Snooze", "Protect this resource", "Monthly waste", "Projected saving",
                 "idle-gpus", "gpu_util_p95_pct"):
        assert text in blocks
    assert len(world["store"].pending_approvals()) == 3


def test_approve_executes_exactly_once_double_clicks_and_replays_change_nothing(world, aws, slack):
    store, target = world["store"], world["actions"]["llm-finetune-01"]
    status, body = click(world, ALICE, APPROVE, target)
    assert status == 200 and body["text"].startswith("Approved")
    assert store.get_action(target).status == "done"
    assert aws.calls.count("StopInstances") == 1
    assert store.get_action(target).after_state["state"] in ("stopping", "stopped")
    update = [a for m, a in slack.calls if m == "chat.update"][-1]
    assert "Approved by slack:U0ALICE" in json.dumps(update["blocks"]) and "actions" not in json.dumps(
        [b["type"] for b in update["blocks"]])

    # a second click, by the other approver, and an exact replay of the first request
    assert click(world, BOB, APPROVE, target)[0] == 200
    body = interaction(ALICE, APPROVE, target)
    headers = sign(body, SECRET)
    assert click(world, ALICE, APPROVE, target, body=body, headers=headers)[0] == 200
    assert click(world, ALICE, APPROVE, target, body=body, headers=headers)[1]["text"].startswith("Nothing to do")
    assert aws.calls.count("StopInstances") == 1  # still exactly once


def test_reject_records_and_executes_nothing(world, aws):
    store, target = world["store"], world["actions"]["llm-finetune-02"]
    status, _ = click(world, BOB, REJECT, target)
    assert status == 200
    assert store.get_action(target).status == "rejected"
    assert "StopInstances" not in aws.calls
    assert click(world, ALICE, APPROVE, target)[1]["text"].startswith("Nothing to do")
    assert "StopInstances" not in aws.calls


@pytest.mark.parametrize("case,expected", [
    ("forged", 401), ("stale", 401), ("unsigned", 401), ("stranger", 403), ("expired", 410)])
def test_refusals_have_the_right_status_and_are_audited(world, aws, case, expected):
    store, target = world["store"], world["actions"]["llm-finetune-01"]
    if case == "forged":
        status, _ = click(world, ALICE, APPROVE, target, secret="not-the-secret")
    elif case == "stale":
        import time

        status, _ = click(world, ALICE, APPROVE, target, ts=int(time.time()) - 600)
    elif case == "unsigned":
        status, _ = click(world, ALICE, APPROVE, target, headers={"Content-Type": "application/x-www-form-urlencoded"})
    elif case == "stranger":
        status, _ = click(world, EVE, APPROVE, target)
    else:
        with store.session() as s:
            s.execute(update(ApprovalRow).where(ApprovalRow.action_id == target)
                      .values(expires_at=utcnow() - timedelta(hours=1)))
        status, _ = click(world, ALICE, APPROVE, target)
        assert store.get_action(target).status == "expired"
    assert status == expected
    # signed refusals are audited; unauthenticated ones are counted, never a row each (anyone can send them)
    unauthenticated = case in ("forged", "stale", "unsigned")
    assert len(refusals(store)) == (0 if unauthenticated else 1)
    counted = world["server"].counters.snapshot()["http_refusals"]
    assert sum(counted.values()) == (1 if unauthenticated else 0)
    assert "StopInstances" not in aws.calls
    assert store.get_action(target).status in ("awaiting_approval", "expired")


def test_user_group_member_may_approve(world, aws):
    assert click(world, CAROL, APPROVE, world["actions"]["llm-finetune-02"])[0] == 200
    assert aws.calls.count("StopInstances") == 1


def test_snooze_extends_expiry_and_protect_excludes_the_resource_for_good(world, aws, no_costwarden_env):
    store = world["store"]
    target = world["actions"]["embeddings-batch"]
    before = store.get_approval(target)[0].expires_at
    assert click(world, ALICE, SNOOZE, target)[0] == 200
    assert store.get_approval(target)[0].expires_at > before
    assert click(world, ALICE, PROTECT, target)[0] == 200
    assert store.get_action(target).status == "rejected"
    again = run_sweep(world["settings"], load_policy_file(world["settings"].state_dir.parent / "p.yml"), dry_run=False)
    assert world["ids"]["embeddings-batch"] not in {f.resource_id for f in again.findings}
    assert "StopInstances" not in aws.calls


def test_two_distinct_approvers_for_destructive_actions(tmp_path):
    from decimal import Decimal

    from costwarden.state.domain import Finding, PlannedAction

    store = Store(f"sqlite:///{tmp_path}/a.db")
    store.start_run("r", dry_run=False, policies=["p"], trigger="t")
    store.add_findings("r", [Finding("f", "p", "d", "aws", "1", "r", "vol-1", "aws.ebs-volume", {}, Decimal(1), "low")])
    store.add_action("r", PlannedAction("a", "f", "p", "snapshot-and-delete", "t", {}, Decimal(1), "k",
                                        decision="needs_approval", status="awaiting_approval", destructive=True),
                     policy_hash="h")
    store.request_approval("a", ttl=timedelta(hours=1), policy="p", required=2)
    assert store.vote("a", actor="slack:U1", decision="approve") == "recorded"
    assert store.vote("a", actor="slack:U1", decision="approve") == "duplicate"
    assert store.get_action("a").status == "awaiting_approval"
    assert store.vote("a", actor="slack:U2", decision="approve") == "approved"
    assert store.get_action("a").status == "approved"
    assert store.vote("a", actor="slack:U3", decision="approve") == "already-approved"


def test_slack_failures_are_retried_or_reported_and_nothing_is_lost(aws, slack, tmp_path, no_costwarden_env):
    seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    policies = load_policy_file(tmp_path / "p.yml")
    slack.fail_next("chat.postMessage", status=429, retry_after=1)  # rate limited once: retried after Retry-After
    slack.fail_next("chat.postMessage", status=500)  # a 5xx once: retried by tenacity
    base = dict(state_dir=tmp_path / "state", dry_run=False, aws=AwsSettings(regions=DEMO_REGIONS))
    ok = run_sweep(Settings(**base, slack=SlackSettings(bot_token=TOKEN, signing_secret=SECRET, channel="#c",
                                                        base_url=slack.base_url)), policies, dry_run=False)
    store = Store(Settings(**base).db_url)
    posted = [ap for ap, _ in store.pending_approvals() if ap.message_ts]
    assert len(posted) == 3 and not ok.warnings
    assert slack.methods().count("chat.postMessage") == 5  # 3 messages + 2 retries

    # a wrong token: not retried, reported, and the actions stay pending and listed
    bad_state = tmp_path / "bad"
    run_sweep(Settings(**{**base, "state_dir": bad_state}, slack=SlackSettings(
        bot_token="xoxb-wrong", signing_secret=SECRET, channel="#c", base_url=slack.base_url)), policies, dry_run=False)
    bad = Store(Settings(state_dir=bad_state).db_url)
    assert len(bad.pending_approvals()) == 3 and not any(ap.message_ts for ap, _ in bad.pending_approvals())
    reasons = [d.reason for d in bad.decisions() if d.decision == "not-posted"]
    assert len(reasons) == 3 and all("invalid_auth" in r for r in reasons)


def test_no_secret_reaches_the_database(world, slack):
    click(world, ALICE, APPROVE, world["actions"]["llm-finetune-01"])
    click(world, EVE, APPROVE, world["actions"]["llm-finetune-02"])
    dump = "\n".join(world["store"].engine.raw_connection().iterdump())
    assert TOKEN not in dump and SECRET not in dump
    assert TOKEN not in repr(world["settings"]) and SECRET not in repr(world["settings"])


def test_a_pending_approval_survives_a_daemon_restart(aws, slack, tmp_path):
    """Daemon 1 posts the request and is stopped; daemon 2 receives the click and executes once."""
    import signal
    import time as _time

    from tests.test_daemon import DaemonProc, wait_for

    ids = seed_estate(aws.endpoint)
    aws.clear_calls()
    extra = {"slack": {"bot_token": TOKEN, "signing_secret": SECRET, "channel": "#finops", "base_url": slack.base_url,
                       "team_id": TEAM_ID}}
    d1 = DaemonProc(tmp_path, aws.endpoint, dry_run=False, policy=POLICY, extra=extra)
    proc = d1.start()
    try:
        def requests() -> int:  # approval requests only (the leader may also post its weekly digest)
            return sum(1 for m, a in slack.calls if m == "chat.postMessage" and "asks to" in (a.get("text") or ""))
        wait_for(lambda: requests() == 3, 60, "three approval requests", proc)
        _time.sleep(1)  # the approval threads open right after the messages
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        d1.stop()
    with d1.db() as db:
        # later scheduled sweeps add `skipped` rows (cooldown) for the same instance: take the open one
        [(target,)] = db.execute("SELECT id FROM actions WHERE status = 'awaiting_approval' "
                                 "AND json_extract(args, '$.instance_id') = ?", (ids["llm-finetune-01"],)).fetchall()

    d2 = DaemonProc(tmp_path, aws.endpoint, dry_run=False, policy=POLICY, extra=extra)
    proc2 = d2.start()
    try:
        body = interaction(ALICE, APPROVE, target)
        req = urllib.request.Request(f"http://127.0.0.1:{d2.port}/slack/interactions", data=body,
                                     headers=sign(body, SECRET), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            assert r.status == 200
        with urllib.request.urlopen(urllib.request.Request(req.full_url, data=body, headers=sign(body, SECRET),
                                                           method="POST"), timeout=30) as r:
            assert r.status == 200  # a second click while the first executes
        wait_for(lambda: d2.db().execute("SELECT status FROM actions WHERE id=?", (target,)).fetchone()[0] == "done",
                 60, "the approved action to run", proc2)
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(30) == 0
    finally:
        d2.stop()
    assert aws.calls.count("StopInstances") == 1
    logs = proc.stderr.read() + proc2.stderr.read()
    assert TOKEN not in logs and SECRET not in logs
