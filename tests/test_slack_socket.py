"""Approvals over Socket Mode: slack-sdk's real SocketModeClient against a fake Slack that speaks
real WebSocket (tests/fakes/slack.py), real boto3 against moto for what gets executed.

The same boundary as the HTTP route (tests/test_approvals.py), minus the signature: allow-list,
pending/expired, one execution; plus what only Socket Mode has: acks, redeliveries, reconnects.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from agent.config import AwsSettings, ConfigError, Settings, SlackSettings, load_settings
from agent.demo import DEMO_REGIONS, seed_estate
from agent.slack_socket import SocketModeListener
from agent.sweep import run_sweep
from policies.loader import load_policy_file
from state.store import Store
from tests.fakes.slack import FakeSlack, block_actions
from tests.test_approvals import ALICE, EVE, POLICY, TOKEN
from tools.slack import APPROVE

APP_TOKEN = "xapp-1-A0COSTWARDEN-1234567890-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def wait_until(predicate, timeout: float = 20, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def slack():
    fake = FakeSlack(TOKEN, app_token=APP_TOKEN)
    yield fake
    fake.stop()


@pytest.fixture
def world(aws, slack, tmp_path, no_costwarden_env, caplog):
    """A live sweep of the demo estate in approve mode (three actions wait), and a connected listener.

    No signing secret: a Socket Mode deployment does not need one.
    """
    caplog.set_level(logging.DEBUG)  # everything, the SDK's own debug lines included, for the token check
    ids = seed_estate(aws.endpoint)
    (tmp_path / "p.yml").write_text(POLICY)
    policies = load_policy_file(tmp_path / "p.yml")
    settings = Settings(state_dir=tmp_path / "state", dry_run=False, aws=AwsSettings(regions=DEMO_REGIONS),
                        slack=SlackSettings(bot_token=TOKEN, app_token=APP_TOKEN, channel="#finops",
                                            base_url=slack.base_url))
    result = run_sweep(settings, policies, dry_run=False)
    store = Store(settings.db_url)
    listener = SocketModeListener(settings, store, lambda: {p.name: p for p in policies}, background=False,
                                  ping_interval=0.5)
    listener.start()
    slack.socket.wait_connected()
    aws.clear_calls()
    by_name = {ids[n]: n for n in ids}
    actions = {by_name[a.args["instance_id"]]: a.id for a in result.actions}
    yield {"settings": settings, "store": store, "listener": listener, "actions": actions}
    listener.stop()


def handled(world, n: int) -> None:
    """Wait until the listener has run the shared interaction logic `n` times (after the ack)."""
    wait_until(lambda: world["listener"].counts["interactions"] >= n, what=f"{n} interactions handled")


def approval_rows(store: Store, action_id: str) -> list:
    return [d for d in store.decisions(action_id=action_id) if d.stage == "approval"]


def test_approve_over_socket_is_acked_executes_once_and_a_replay_changes_nothing(world, aws, slack, caplog):
    store, target = world["store"], world["actions"]["llm-finetune-01"]
    envelope = slack.socket.send(block_actions(ALICE, APPROVE, target))
    assert slack.socket.wait_ack(envelope) == [{"envelope_id": envelope}]
    handled(world, 1)
    assert store.get_action(target).status == "done"
    assert aws.calls.count("StopInstances") == 1
    [approved] = [d for d in approval_rows(store, target) if d.decision == "approved"]
    assert approved.actor == "slack:U0ALICE" and approved.detail == {"transport": "socket"}
    update = [a for m, a in slack.calls if m == "chat.update"][-1]
    assert "Approved by slack:U0ALICE" in json.dumps(update["blocks"])

    # Slack redelivers the same envelope (retry_attempt 1), then someone replays it again
    before = len(store.decisions())
    slack.socket.send(block_actions(ALICE, APPROVE, target), envelope_id=envelope, retry_attempt=1)
    slack.socket.send(block_actions(ALICE, APPROVE, target), envelope_id=envelope, retry_attempt=2)
    slack.socket.wait_ack(envelope, count=3)
    handled(world, 3)
    assert aws.calls.count("StopInstances") == 1  # still exactly once
    assert len(store.decisions()) == before and store.get_action(target).status == "done"

    # the app token reaches neither the logs (raw records, before any redaction) nor the database
    assert slack.methods().count("apps.connections.open") == 1
    assert all(APP_TOKEN not in r.getMessage() and APP_TOKEN not in json.dumps(vars(r), default=str)
               for r in caplog.records)
    assert any(r.name.startswith("costwarden.slack.socket") for r in caplog.records)  # the check saw its logs
    dump = "\n".join(store.engine.raw_connection().iterdump())
    assert APP_TOKEN not in dump and TOKEN not in dump


def test_a_strangers_click_is_refused_recorded_and_executes_nothing(world, aws, slack):
    store, target = world["store"], world["actions"]["llm-finetune-02"]
    envelope = slack.socket.send(block_actions(EVE, APPROVE, target))
    slack.socket.wait_ack(envelope)
    handled(world, 1)
    [refused] = approval_rows(store, target)
    assert (refused.decision, refused.actor, refused.reason) == (
        "refused", "slack:U0EVE", "not an allowed approver for this policy")
    assert refused.detail == {"http_status": 403, "transport": "socket"}
    assert store.get_action(target).status == "awaiting_approval"
    assert "StopInstances" not in aws.calls


def test_other_envelopes_are_acked_and_ignored_and_garbage_is_refused(world, aws, slack):
    store = world["store"]
    events = slack.socket.send({"event": {"type": "app_mention", "text": "hi"}}, type="events_api")
    slack.socket.wait_ack(events)
    wait_until(lambda: world["listener"].counts["ignored"] == 1, what="events_api envelope ignored")
    garbage = slack.socket.send({"type": "view_submission", "view": {}})
    slack.socket.wait_ack(garbage)
    handled(world, 1)
    refused = [d for d in store.decisions() if d.decision == "refused"]
    assert [(d.reason, d.detail["transport"]) for d in refused] == [("not a Costwarden interaction payload", "socket")]
    assert "StopInstances" not in aws.calls


def test_a_dropped_connection_is_reopened_and_clicks_still_work(world, aws, slack):
    store, target = world["store"], world["actions"]["embeddings-batch"]
    slack.socket.drop()  # no close frame: the client notices by its pings
    slack.socket.wait_connected(count=2, timeout=20)
    assert slack.methods().count("apps.connections.open") == 2  # a fresh URL and ticket, as Slack requires
    envelope = slack.socket.send(block_actions(ALICE, APPROVE, target))
    slack.socket.wait_ack(envelope)
    handled(world, 1)
    assert store.get_action(target).status == "done" and aws.calls.count("StopInstances") == 1


def test_a_rejected_app_token_is_reported_and_retried_without_crashing(tmp_path, slack, caplog, no_costwarden_env):
    caplog.set_level(logging.INFO, logger="costwarden.slack.socket")
    settings = Settings(state_dir=tmp_path / "state", slack=SlackSettings(
        bot_token=TOKEN, channel="#c", base_url=slack.base_url, app_token="xapp-1-wrong-0000000000"))
    listener = SocketModeListener(settings, Store(settings.db_url), dict, first_backoff=0.1)
    listener.start()
    try:
        wait_until(lambda: slack.methods().count("apps.connections.open") >= 2, what="a retry")
        assert not listener.connected() and slack.socket.connections == []
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "costwarden.slack.socket"]
        assert errors and "slack.app_token" in errors[0].getMessage() and errors[0].error == "invalid_auth"
    finally:
        listener.stop()


def test_config_wants_an_xapp_token(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("slack:\n  bot_token: xoxb-1\n  app_token: xoxb-not-an-app-token\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    msg = str(exc.value)
    assert "slack.app_token" in msg and "xapp-" in msg and "xoxb-not-an-app-token" not in msg and "\n" not in msg
    cfg.write_text(f"slack:\n  app_token: {APP_TOKEN}\n")
    assert load_settings(cfg).slack.app_token.get_secret_value() == APP_TOKEN


def test_the_daemon_takes_clicks_over_socket_mode_and_closes_it_on_sigterm(aws, slack, tmp_path):
    """No signing secret, no reachable HTTP route: the click arrives on the daemon's own socket."""
    import signal

    from tests.test_daemon import DaemonProc, wait_for

    ids = seed_estate(aws.endpoint)
    aws.clear_calls()
    extra = {"slack": {"bot_token": TOKEN, "app_token": APP_TOKEN, "channel": "#finops", "base_url": slack.base_url}}
    d = DaemonProc(tmp_path, aws.endpoint, dry_run=False, policy=POLICY, extra=extra)
    proc = d.start()
    try:
        ws = slack.socket.wait_connected(timeout=30)

        def requests() -> int:
            return sum(1 for m, a in slack.calls if m == "chat.postMessage" and "asks to" in (a.get("text") or ""))
        wait_for(lambda: requests() == 3, 60, "three approval requests", proc)
        time.sleep(1)  # the approval threads open right after the messages
        with d.db() as db:
            [(target,)] = db.execute("SELECT id FROM actions WHERE status = 'awaiting_approval' "
                                     "AND json_extract(args, '$.instance_id') = ?", (ids["llm-finetune-01"],)).fetchall()
        envelope = slack.socket.send(block_actions(ALICE, APPROVE, target))
        slack.socket.wait_ack(envelope, timeout=30)
        wait_for(lambda: d.db().execute("SELECT status FROM actions WHERE id=?", (target,)).fetchone()[0] == "done",
                 60, "the approved action to run", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        wait_until(lambda: ws.close_code is not None, 10, "the daemon to close its socket")
    finally:
        d.stop()
    assert aws.calls.count("StopInstances") == 1
    with d.db() as db:
        transports = {json.loads(detail)["transport"] for (detail,) in db.execute(
            "SELECT detail FROM decisions WHERE stage='approval' AND decision='approved'")}
    assert transports == {"socket"}
    logs = proc.stderr.read()
    assert "slack socket mode connected" in logs
    assert APP_TOKEN not in logs and TOKEN not in logs
