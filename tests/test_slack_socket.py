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

from costwarden.agent.config import AwsSettings, ConfigError, Settings, SlackSettings, load_settings
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.server.slack_socket import SocketModeListener, reply_url_allowed
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.store import Store
from tests.fakes.slack import FakeSlack, block_actions
from tests.test_approvals import ALICE, EVE, POLICY, TOKEN
from costwarden.tools.slack import APPROVE, REJECT

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
                                  ping_interval=1.5)  # a pong may lag 4 s on a loaded CI machine
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


def replies_to(slack: FakeSlack, url: str) -> list[dict]:
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    return [r for r in slack.replies if r["path"] == "/" + path]


def test_the_clicker_gets_the_http_reply_text_on_the_response_url(world, aws, slack, caplog):
    store, listener = world["store"], world["listener"]
    approve_url, refuse_url = slack.response_url(), slack.response_url()
    slack.socket.send(block_actions(ALICE, APPROVE, world["actions"]["llm-finetune-01"], approve_url))
    slack.socket.send(block_actions(EVE, APPROVE, world["actions"]["llm-finetune-02"], refuse_url))
    [approved] = wait_until(lambda: replies_to(slack, approve_url), what="the reply to the approver")
    [refused] = wait_until(lambda: replies_to(slack, refuse_url), what="the reply to the stranger")
    assert approved["body"] == {"text": "Approved: executing now.", "response_type": "ephemeral",
                                "replace_original": False}
    assert refused["body"] == {"text": "Refused: you are not an allowed approver for policy idle-gpus; "
                                       "nothing was changed.", "response_type": "ephemeral", "replace_original": False}
    assert approved["authorization"] is None and refused["authorization"] is None  # the URL is the credential
    assert aws.calls.count("StopInstances") == 1
    assert store.get_action(world["actions"]["llm-finetune-02"]).status == "awaiting_approval"

    # no reply: an envelope with no response_url, and a response_url that is not Slack's
    elsewhere = FakeSlack(TOKEN)
    try:
        events = slack.socket.send({"event": {"type": "app_mention"}}, type="events_api")
        stray = slack.socket.send(block_actions(ALICE, REJECT, world["actions"]["embeddings-batch"],
                                                elsewhere.response_url()))
        slack.socket.wait_ack(events)
        slack.socket.wait_ack(stray)
        handled(world, 3)
        wait_until(lambda: listener.stats()["replies"].get("skipped") == 1, what="the stray reply to be skipped")
        time.sleep(0.5)
        assert elsewhere.replies == [] and elsewhere.calls == []
    finally:
        elsewhere.stop()
    assert len(slack.replies) == 2 and listener.stats()["replies"] == {"sent": 2, "skipped": 1}
    assert listener.stats()["envelopes"] == {"interactive": 3, "events_api": 1}
    secrets = [approve_url.split("/actions/")[1], refuse_url.split("/actions/")[1], APP_TOKEN, TOKEN]
    ours = [r for r in caplog.records if r.name.startswith(("costwarden", "slack_sdk"))]  # not the fake's server
    assert any(r.name == "costwarden.slack.socket.sdk" and "[REDACTED]" in r.getMessage() for r in ours)
    assert not [r for r in ours for x in secrets if x in r.getMessage() or x in json.dumps(vars(r), default=str)]


def test_a_reply_is_retried_on_429_and_5xx_after_the_ack_and_a_lost_one_is_counted(world, slack, caplog):
    listener = world["listener"]
    slack.fail_next("response_url", status=429, retry_after=1)
    slack.fail_next("response_url", status=502)
    url = slack.response_url()
    envelope = slack.socket.send(block_actions(ALICE, REJECT, world["actions"]["llm-finetune-02"], url))
    slack.socket.wait_ack(envelope)
    assert len(replies_to(slack, url)) < 3  # acked while the reply still waits out Retry-After
    wait_until(lambda: listener.stats()["replies"].get("sent") == 1, what="the reply after two retries")
    assert [r["body"]["text"] for r in replies_to(slack, url)] == ["Rejected: nothing will change."] * 3

    slack.fail_next("response_url", status=500, times=4)  # the first try and all three retries
    lost = slack.response_url()
    slack.socket.send(block_actions(ALICE, REJECT, world["actions"]["embeddings-batch"], lost))
    wait_until(lambda: listener.stats()["replies"].get("failed") == 1, what="the reply to be given up")
    assert len(replies_to(slack, lost)) == 4
    warnings = [r for r in caplog.records if "reply to the clicker not sent" in r.getMessage()]
    assert warnings and warnings[0].error.startswith("HTTP 500")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("costwarden", "slack_sdk"))]
    assert ours and not [m for m in ours if lost.split("/actions/")[1] in m]


def test_reply_urls_go_to_slack_or_the_configured_api_host_only():
    assert reply_url_allowed("https://hooks.slack.com/actions/T0/1/abc", None)
    assert reply_url_allowed("https://hooks.slack-gov.com/actions/T0/1/abc", None)
    assert reply_url_allowed("http://127.0.0.1:8080/actions/T0/1/abc", "http://127.0.0.1:8080/api/")
    for url in ("http://hooks.slack.com/actions/T0/1/abc",          # not TLS
                "https://hooks.slack.com.evil.example/actions/x",   # look-alike host
                "https://user:pw@hooks.slack.com/actions/x",        # credentials in the URL
                "https://hooks.slack.com:8443/actions/x",           # another port
                "http://127.0.0.1:8081/actions/T0/1/abc",           # not the configured host
                "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd", "https://[::1/x", ""):
        assert not reply_url_allowed(url, "http://127.0.0.1:8080/api/"), url


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

    from tests.test_daemon import DaemonProc, get, wait_for

    ids = seed_estate(aws.endpoint)
    aws.clear_calls()
    extra = {"slack": {"bot_token": TOKEN, "app_token": APP_TOKEN, "channel": "#finops", "base_url": slack.base_url}}
    d = DaemonProc(tmp_path, aws.endpoint, dry_run=False, policy=POLICY, extra=extra)
    proc = d.start()
    try:
        slack.socket.wait_connected(timeout=30)

        def requests() -> int:
            return sum(1 for m, a in slack.calls if m == "chat.postMessage" and "asks to" in (a.get("text") or ""))
        wait_for(lambda: requests() == 3, 60, "three approval requests", proc)
        time.sleep(1)  # the approval threads open right after the messages
        with d.db() as db:
            [(target,)] = db.execute("SELECT id FROM actions WHERE status = 'awaiting_approval' "
                                     "AND json_extract(args, '$.instance_id') = ?", (ids["llm-finetune-01"],)).fetchall()
        reply_url = slack.response_url()
        envelope = slack.socket.send(block_actions(ALICE, APPROVE, target, reply_url))
        slack.socket.wait_ack(envelope, timeout=30)
        wait_for(lambda: d.db().execute("SELECT status FROM actions WHERE id=?", (target,)).fetchone()[0] == "done",
                 60, "the approved action to run", proc)
        [reply] = wait_for(lambda: replies_to(slack, reply_url), 30, "the reply to the clicker", proc)
        assert reply["body"]["text"] == "Approved: executing now." and reply["authorization"] is None

        # the link on the daemon's own endpoints: up, one interactive envelope, no reconnect yet
        status, body = get(d.port, "/readyz")
        sock = json.loads(body)["slack_socket"]
        assert status == 200 and sock["enabled"] and sock["connected"] and sock["reconnects"] == 0
        assert sock["connected_since"] and sock["last_error"] is None
        text = get(d.port, "/metrics")[1]
        assert series(text, "costwarden_slack_socket_connected") == 1
        assert series(text, 'costwarden_slack_socket_envelopes_total{type="interactive"}') == 1
        assert series(text, 'costwarden_slack_socket_replies_total{outcome="sent"}') == 1
        assert series(text, "costwarden_slack_socket_reconnects_total") == 0

        slack.socket.drop()  # a lost network path: the daemon's watchdog opens a new session
        slack.socket.wait_connected(count=2, timeout=30)
        wait_for(lambda: series(get(d.port, "/metrics")[1], "costwarden_slack_socket_reconnects_total") == 1,
                 30, "the reconnect to be counted", proc)
        assert json.loads(get(d.port, "/readyz")[1])["slack_socket"]["reconnects"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        wait_until(lambda: slack.socket.connections[-1].close_code is not None, 10, "the daemon to close its socket")
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


def test_the_daemon_stays_ready_without_its_socket_and_says_why(aws, slack, tmp_path):
    """A rejected app token: /readyz is still 200 (HTTP routes and sweeps work) and shows the link down."""
    from tests.test_daemon import APPROVE_POLICY, DaemonProc, get, wait_for

    extra = {"slack": {"bot_token": TOKEN, "app_token": "xapp-1-revoked-0000000000", "channel": "#finops",
                       "base_url": slack.base_url}}
    d = DaemonProc(tmp_path, aws.endpoint, dry_run=True, policy=APPROVE_POLICY, extra=extra)
    proc = d.start()
    try:
        _, body = wait_for(lambda: (r := get(d.port, "/readyz"))[0] == 200
                                and json.loads(r[1])["slack_socket"].get("last_error") and r, 30, "/readyz", proc)
        assert json.loads(body)["slack_socket"] == {"enabled": True, "connected": False, "connected_since": None,
                                                    "reconnects": 0, "last_error": "invalid_auth"}
        text = get(d.port, "/metrics")[1]
        assert series(text, "costwarden_slack_socket_connected") == 0
        assert series(text, "costwarden_slack_socket_reconnects_total") == 0
        assert slack.socket.connections == []
    finally:
        d.stop()


def test_metrics_and_readyz_leave_socket_mode_out_when_it_is_off(tmp_path, no_costwarden_env):
    from costwarden.agent.server.daemon import Daemon
    from tests.test_daemon import get

    (tmp_path / "p.yml").write_text(POLICY)
    d = Daemon(Settings(state_dir=tmp_path / "state", policies=[tmp_path / "p.yml"]), host="127.0.0.1", port=0)
    d.http.start()
    try:
        assert json.loads(get(d.http.port, "/readyz")[1])["slack_socket"] == {"enabled": False}
        assert "costwarden_slack_socket" not in get(d.http.port, "/metrics")[1]
    finally:
        d.http.stop()
        d.store.close()


def series(text: str, name: str) -> float | None:
    """The value of one exposition line, labels included in `name` (`metric{a="b"}`)."""
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    return None
