"""Slack Web API: post and update approval messages, read user groups.

slack-sdk's RateLimitErrorRetryHandler honours Retry-After on HTTP 429; tenacity retries 5xx
and connection failures; anything else (invalid_auth, channel_not_found) fails at once with a
one-line ToolError, since retrying cannot fix it. Tokens never appear in messages or errors.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from costwarden.tools.errors import ToolError

APPROVE, REJECT, SNOOZE, PROTECT = "costwarden_approve", "costwarden_reject", "costwarden_snooze", "costwarden_protect"
BUTTONS = {APPROVE: "approve", REJECT: "reject", SNOOZE: "snooze", PROTECT: "protect"}


def _transient(exc: BaseException) -> bool:
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        return exc.response.status_code >= 500
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


_retry = retry(retry=retry_if_exception(_transient), wait=wait_exponential_jitter(multiplier=0.2, max=5),
               stop=stop_after_attempt(4), reraise=True)


class SlackNotifier:
    def __init__(self, token: str, *, base_url: str | None = None, timeout: int = 10) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

        kwargs: dict[str, Any] = {"token": token, "timeout": timeout,
                                  "retry_handlers": [RateLimitErrorRetryHandler(max_retry_count=3)]}
        if base_url:
            kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self.client = WebClient(**kwargs)
        self._groups: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError

        fn = getattr(self.client, method.replace(".", "_"))

        @_retry
        def go() -> dict[str, Any]:
            return fn(**kwargs).data  # type: ignore[no-any-return]

        try:
            return go()
        except SlackApiError as exc:
            err = exc.response.get("error") if hasattr(exc.response, "get") else None
            raise ToolError(f"slack {method}: {err or f'HTTP {exc.response.status_code}'}") from None
        except OSError as exc:
            raise ToolError(f"slack {method}: {exc.__class__.__name__}: {exc}") from None

    def post(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> tuple[str, str]:
        data = self._call("chat.postMessage", channel=channel, text=text, blocks=blocks)
        return str(data["channel"]), str(data["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]) -> None:
        self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)

    def group_members(self, group_id: str, ttl_s: float = 300.0) -> set[str]:
        with self._lock:
            hit = self._groups.get(group_id)
            if hit and time.monotonic() - hit[0] < ttl_s:
                return hit[1]
        members = set(self._call("usergroups.users.list", usergroup=group_id).get("users", []))
        with self._lock:
            self._groups[group_id] = (time.monotonic(), members)
        return members


def _fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]}


def approval_blocks(action: dict[str, Any], finding: dict[str, Any], *, expires: str,
                    required: int, votes: list[str] | None = None, outcome: str | None = None) -> list[dict[str, Any]]:
    """Block Kit for one approval request; with `outcome`, the same message closed (no buttons)."""
    ev = finding.get("evidence") or {}
    facts = ", ".join(f"{k}: {v}" for k, v in ev.items() if k not in ("price_source", "summary"))[:1500]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text",
                                    "text": f"Costwarden: {action['action']} {finding['resource_id']}?"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (finding.get("rationale") or "")[:2900] or " "}},
        _fields([("Resource", f"`{finding['resource_id']}` ({finding['resource_type']})"),
                 ("Account / region", f"{finding['account']} / {finding['region']}"),
                 ("Monthly waste", f"${float(finding['monthly_waste_usd']):,.2f}"),
                 ("Projected saving", f"${float(action['projected_monthly_savings_usd']):,.2f}/month"),
                 ("Policy", action["policy"]),
                 ("Why it needs you", action.get("reason") or "policy"),
                 *([("Proposed change", action["change"])] if action.get("change") else [])]),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Evidence: {facts}" if facts else "Evidence: -"}]},
    ]
    diff = str((action.get("args") or {}).get("diff") or "")
    if diff:  # a config change (route-model): the person approves exactly this diff
        shown = diff if len(diff) <= 2800 else diff[:2800] + "\n... (diff cut; the full diff is in the action's record)"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Proposed change*\n```{shown}```"}})
    if outcome:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": outcome[:2900]}})
        return blocks
    note = f"Needs {required} distinct approvers. " if required > 1 else ""
    if votes:
        note += f"Approved so far by {', '.join(f'<@{v}>' for v in votes)}. "
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{note}Expires {expires}."}]})
    value = action["id"]
    blocks.append({"type": "actions", "block_id": f"costwarden:{value}", "elements": [
        {"type": "button", "action_id": APPROVE, "value": value, "style": "primary",
         "text": {"type": "plain_text", "text": "Approve"}},
        {"type": "button", "action_id": REJECT, "value": value, "style": "danger",
         "text": {"type": "plain_text", "text": "Reject"}},
        {"type": "button", "action_id": SNOOZE, "value": value, "text": {"type": "plain_text", "text": "Snooze"}},
        {"type": "button", "action_id": PROTECT, "value": value,
         "text": {"type": "plain_text", "text": "Protect this resource"}},
    ]})
    return blocks
