"""POST /slack/interactions: a click on Approve, Reject, Snooze or Protect.

The order of checks is the security boundary, and every refusal is written to the audit
trail: signature present -> timestamp within 5 minutes -> v0 HMAC-SHA256 valid (slack-sdk's
SignatureVerifier) -> a known action -> the clicking user is an allowed approver -> the
approval still pending and not expired. Only then is the vote claimed in the store; the
slow part (resuming the thread, the cloud call) runs after Slack has its answer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from agent.config import Settings
from agent.server import Response
from policies.loader import LoadedPolicy
from state.store import Store
from tools.errors import ToolError
from tools.slack import BUTTONS

log = logging.getLogger("costwarden.slack")

MAX_SKEW_S = 300


class InteractionHandler:
    def __init__(self, settings: Settings, store: Store, policies: Callable[[], dict[str, LoadedPolicy]],
                 *, clock: Callable[[], float] = time.time, background: bool = True) -> None:
        from slack_sdk.signature import SignatureVerifier

        from agent.approvals import slack_for

        if settings.slack.signing_secret is None:
            raise ToolError("slack.signing_secret is not set: cannot verify interaction requests")
        self.settings = settings
        self.store = store
        self.policies = policies
        self.clock = clock
        self.background = background
        self.slack = slack_for(settings)
        self._verifier = SignatureVerifier(settings.slack.signing_secret.get_secret_value())
        self.threads: list[threading.Thread] = []

    def _refuse(self, status: int, reason: str, *, actor: str = "unknown", action_id: str | None = None) -> Response:
        self.store.append_decision(stage="approval", decision="refused", reason=reason, actor=actor,
                                   action_id=action_id, detail={"http_status": status})
        log.warning("slack interaction refused", extra={"reason": reason, "actor": actor, "action_id": action_id})
        return Response(status, {"error": reason})

    def __call__(self, headers: dict[str, str], body: bytes) -> Response:
        ts, sig = headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
        if not ts or not sig:
            return self._refuse(401, "missing Slack signature headers")
        try:
            skew = abs(self.clock() - int(ts))
        except ValueError:
            return self._refuse(401, "malformed Slack timestamp")
        if skew > MAX_SKEW_S:
            return self._refuse(401, f"stale Slack timestamp ({skew:.0f}s old; replay window is {MAX_SKEW_S}s)")
        if not self._verifier.is_valid(body, ts, sig):
            return self._refuse(401, "invalid Slack signature")
        try:
            payload = json.loads(urllib.parse.parse_qs(body.decode())["payload"][0])
            user = str(payload["user"]["id"])
            click = payload["actions"][0]
            kind, action_id = BUTTONS[click["action_id"]], str(click["value"])
        except (KeyError, IndexError, ValueError, TypeError):
            return self._refuse(400, "not a Costwarden interaction payload")
        actor = f"slack:{user}"
        pair = self.store.get_approval(action_id)
        if pair is None:
            return self._refuse(404, "unknown action", actor=actor, action_id=action_id)
        approval, action = pair
        lp = self.policies().get(approval.policy)
        if lp is None:
            return self._refuse(409, f"policy {approval.policy!r} is no longer loaded", actor=actor, action_id=action_id)
        if not self._allowed(user, lp):
            return self._refuse(403, "not an allowed approver for this policy", actor=actor, action_id=action_id)
        if approval.status == "expired":
            return self._refuse(410, "the approval has expired", actor=actor, action_id=action_id)
        if kind == "protect":
            return self._protect(actor, action_id, action.resource_key)
        outcome = self.store.vote(action_id, actor=actor, decision=kind,
                                  snooze=_hours(lp.policy.approval.snooze_hours))
        if outcome == "expired":
            self._later(lambda: self._finish(action_id, "expired", actor))
            return self._refuse(410, "the approval has expired", actor=actor, action_id=action_id)
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

    def _protect(self, actor: str, action_id: str, resource_key: str) -> Response:
        self.store.protect(resource_key, actor=actor, reason=f"protected from Slack on action {action_id}")
        outcome = self.store.vote(action_id, actor=actor, decision="reject")
        if outcome == "rejected":
            self._later(lambda: self._finish(action_id, "rejected", actor))
        return Response(200, {"response_type": "ephemeral", "replace_original": False,
                              "text": "Protected: Costwarden will never act on this resource again."})

    def _later(self, fn: Callable[[], Any]) -> None:
        if not self.background:
            fn()
            return
        t = threading.Thread(target=self._guarded, args=(fn,), daemon=True)
        self.threads.append(t)
        t.start()

    @staticmethod
    def _guarded(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the decision is recorded; the failure must be too
            log.exception("approval follow-up failed")

    def _finish(self, action_id: str, outcome: str, actor: str) -> None:
        from agent.approvals import _resume

        _resume(self.settings, self.store, action_id, {"decision": outcome, "actor": actor})

    def _refresh(self, action_id: str) -> None:
        from agent.approvals import _context, update_message

        update_message(_context(self.settings, self.store), action_id, None)


def _hours(h: float) -> Any:
    from datetime import timedelta

    return timedelta(hours=h)
