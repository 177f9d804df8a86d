"""A click on Approve, Reject, Snooze or Protect, over HTTP (POST /slack/interactions) or
Socket Mode (agent/server/slack_socket.py).

The order of checks is the security boundary: [HTTP only: Content-Type is Slack's form encoding
-> signature headers present -> timestamp within 5 minutes -> body is UTF-8 -> v0 HMAC-SHA256
valid (slack-sdk's SignatureVerifier)] -> the click comes from the pinned workspace
(`slack.team_id`, and `slack.api_app_id` when set) -> a known action -> the clicking user is an
allowed approver -> the approval still pending and not expired.

Refusals before the workspace pin (anyone on the network can cause them, and a click from
another workspace that installed the same app is not one of ours) are counted in /metrics by
reason and logged at a bounded rate: one database row each would let a stranger grow the audit
trail without limit. From the pin on, refusals and decisions go to the audit trail with the
transport they came by. Socket Mode skips the signature steps because its payloads arrive on a
WebSocket that the app token itself opened (apps.connections.open). Only then is the vote
claimed in the store; the slow part (resuming the thread, the cloud call) runs after Slack has
its answer.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.server.http import Response
from costwarden.agent.server.logs import RateLimitedLog
from costwarden.agent.server.metrics import ProcessCounters
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.store import Store
from costwarden.tools.errors import ToolError
from costwarden.tools.slack import BUTTONS

log = logging.getLogger("costwarden.slack")

MAX_SKEW_S = 300
FORM = "application/x-www-form-urlencoded"


class Interactions:
    """The transport-independent half: from a parsed block_actions payload to a claimed vote.

    Shared by the HTTP route and the Socket Mode listener so that both enforce the same
    allow-list, expiry and atomic claim, and execute an approved action once.
    """

    def __init__(self, settings: Settings, store: Store, policies: Callable[[], dict[str, LoadedPolicy]],
                 *, clock: Callable[[], float] = time.time, background: bool = True,
                 counters: ProcessCounters | None = None) -> None:
        from costwarden.agent.engine.approvals import slack_for

        self.counters = counters or ProcessCounters()
        self._unauth_log = RateLimitedLog(log)
        self.settings = settings
        self.store = store
        self.policies = policies
        self.clock = clock
        self.background = background
        self.slack = slack_for(settings)
        self._followups: set[threading.Thread] = set()  # running follow-ups; each removes itself when done
        self._followups_done = threading.Condition()

    def _refuse(self, status: int, reason: str, *, transport: str, actor: str = "unknown",
                action_id: str | None = None) -> Response:
        self.store.append_decision(stage="approval", decision="refused", reason=reason, actor=actor,
                                   action_id=action_id, detail={"http_status": status, "transport": transport})
        log.warning("slack interaction refused", extra={"reason": reason, "actor": actor, "action_id": action_id,
                                                        "transport": transport})
        return Response(status, {"error": reason})

    def _reject(self, status: int, reason: str, message: str, *, transport: str) -> Response:
        """A refusal before we know the sender is ours: a counter and a bounded log line, no row."""
        self.counters.add("http_refusals", {reason: 1})
        self._unauth_log.warning("slack interaction refused", reason, status=status, transport=transport)
        return Response(status, {"error": message})

    def foreign_origin(self, payload: Any) -> str | None:
        """Why a payload is not from the pinned workspace and app, or None if it is."""
        slack = self.settings.slack
        if not isinstance(payload, dict):
            return None  # not a click at all: the payload check below says so
        team = payload.get("team")
        team_id = team.get("id") if isinstance(team, dict) else None
        if slack.team_id is not None and team_id != slack.team_id:
            return "wrong_workspace"
        if slack.api_app_id is not None and payload.get("api_app_id") != slack.api_app_id:
            return "wrong_app"
        return None

    def handle(self, payload: Any, *, transport: str) -> Response:
        """Apply one verified interaction payload; `transport` ("http" | "socket") goes to the audit trail."""
        foreign = self.foreign_origin(payload)
        if foreign is not None:
            what = "workspace (team.id)" if foreign == "wrong_workspace" else "app (api_app_id)"
            return self._reject(403, foreign, f"this click comes from another Slack {what}", transport=transport)
        try:
            user = str(payload["user"]["id"])
            click = payload["actions"][0]
            kind, action_id = BUTTONS[click["action_id"]], str(click["value"])
        except (KeyError, IndexError, ValueError, TypeError):
            return self._refuse(400, "not a Costwarden interaction payload", transport=transport)
        actor = f"slack:{user}"
        refuse = functools.partial(self._refuse, transport=transport, actor=actor, action_id=action_id)
        pair = self.store.get_approval(action_id)
        if pair is None:
            return refuse(404, "unknown action")
        approval, action = pair
        lp = self.policies().get(approval.policy)
        if lp is None:
            return refuse(409, f"policy {approval.policy!r} is no longer loaded")
        if not self._allowed(user, lp):
            return refuse(403, "not an allowed approver for this policy")
        if approval.status == "expired":
            return refuse(410, "the approval has expired")
        if kind == "protect":
            return self._protect(actor, action_id, action.resource_key, transport)
        outcome = self.store.vote(action_id, actor=actor, decision=kind,
                                  snooze=_hours(lp.policy.approval.snooze_hours), detail={"transport": transport})
        if outcome == "expired":
            self._later(lambda: self._finish(action_id, "expired", actor))
            return refuse(410, "the approval has expired")
        if outcome in ("approved", "rejected"):
            self._later(lambda: self._finish(action_id, outcome, actor))
        elif outcome in ("recorded", "snoozed"):
            self._later(lambda: self._refresh(action_id))
        text = {"approved": "Approved: executing now.", "rejected": "Rejected: nothing will change.",
                "recorded": "Your approval is recorded; another approver is needed.",
                "snoozed": "Snoozed.", "duplicate": "You already approved this; another approver is needed."}
        return Response(200, {"response_type": "ephemeral", "replace_original": False,
                              "text": text.get(outcome, f"Nothing to do: this action is {outcome.removeprefix('already-')}.")})

    # --- helpers ---------------------------------------------------------------------------
    def _allowed(self, user: str, lp: LoadedPolicy) -> bool:
        rules = lp.policy.approval
        if user in rules.approvers:
            return True
        for group in rules.approver_groups:
            if self.slack is None:
                continue
            try:
                if user in self.slack.group_members(group):
                    return True
            except ToolError as exc:
                log.warning("cannot read Slack user group", extra={"group": group, "error": str(exc)})
        return False

    def _protect(self, actor: str, action_id: str, resource_key: str, transport: str) -> Response:
        self.store.protect(resource_key, actor=actor, reason=f"protected from Slack on action {action_id}")
        outcome = self.store.vote(action_id, actor=actor, decision="reject", detail={"transport": transport})
        if outcome == "rejected":
            self._later(lambda: self._finish(action_id, "rejected", actor))
        return Response(200, {"response_type": "ephemeral", "replace_original": False,
                              "text": "Protected: Costwarden will never act on this resource again."})

    def _later(self, fn: Callable[[], Any]) -> None:
        """Run the slow part after Slack has its answer, on a thread the daemon joins at shutdown
        (`join_followups`): an approved action must not be cut off by a clean stop."""
        if not self.background:
            fn()
            return
        t = threading.Thread(target=self._guarded, args=(fn,), name="slack-followup", daemon=True)
        with self._followups_done:
            self._followups.add(t)
        t.start()

    def _guarded(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the decision is recorded; the failure must be too
            log.exception("approval follow-up failed")
        finally:
            with self._followups_done:
                self._followups.discard(threading.current_thread())
                self._followups_done.notify_all()

    def followups_running(self) -> int:
        with self._followups_done:
            return len(self._followups)

    def join_followups(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the follow-ups in flight (resuming a thread, the cloud
        call, the message update); return how many are still running. What a cut-off follow-up
        leaves (`approved`, or claimed and `pending`) is settled at the next start."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._followups_done:
            while self._followups and (left := deadline - time.monotonic()) > 0:
                self._followups_done.wait(left)
            return len(self._followups)

    def _finish(self, action_id: str, outcome: str, actor: str) -> None:
        from costwarden.agent.engine.approvals import resume_thread

        resume_thread(self.settings, self.store, action_id, {"decision": outcome, "actor": actor})

    def _refresh(self, action_id: str) -> None:
        from costwarden.agent.engine.approvals import refresh_message

        refresh_message(self.settings, self.store, action_id)


class InteractionHandler(Interactions):
    """POST /slack/interactions: verify Slack's signature, then the shared checks."""

    def __init__(self, settings: Settings, store: Store, policies: Callable[[], dict[str, LoadedPolicy]],
                 *, clock: Callable[[], float] = time.time, background: bool = True,
                 counters: ProcessCounters | None = None) -> None:
        from slack_sdk.signature import SignatureVerifier

        if settings.slack.signing_secret is None:
            raise ToolError("slack.signing_secret is not set: cannot verify interaction requests")
        if settings.slack.team_id is None:
            raise ToolError("slack.signing_secret is set but slack.team_id is not: pin the workspace whose clicks "
                            "count (its T... id), or the signing secret alone lets any workspace with the app approve")
        super().__init__(settings, store, policies, clock=clock, background=background, counters=counters)
        self._verifier = SignatureVerifier(settings.slack.signing_secret.get_secret_value())

    def __call__(self, headers: dict[str, str], body: bytes) -> Response:
        reject = functools.partial(self._reject, transport="http")
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != FORM:
            return reject(415, "content_type", f"Slack interactions are {FORM}, not {media or 'untyped'}")
        ts, sig = headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
        if not ts or not sig:
            return reject(401, "missing_signature", "missing Slack signature headers")
        try:
            skew = abs(self.clock() - int(ts))
        except (ValueError, OverflowError):  # not a number, or too many digits to be a time
            return reject(401, "bad_timestamp", "malformed Slack timestamp")
        if skew > MAX_SKEW_S:
            return reject(401, "stale_timestamp", f"stale Slack timestamp (replay window is {MAX_SKEW_S}s)")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return reject(400, "bad_encoding", "the body is not UTF-8")
        if not self._verifier.is_valid(text, ts, sig):
            return reject(401, "bad_signature", "invalid Slack signature")
        try:
            payload = json.loads(urllib.parse.parse_qs(text, strict_parsing=True)["payload"][0])
        except (KeyError, IndexError, ValueError, TypeError):
            payload = None
        if payload is None:  # signed by Slack, so it is audited like any other signed refusal
            return self._refuse(400, "not a Costwarden interaction payload", transport="http")
        return self.handle(payload, transport="http")


def _hours(h: float) -> Any:
    from datetime import timedelta

    return timedelta(hours=h)
