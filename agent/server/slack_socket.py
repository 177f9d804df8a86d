"""Slack button clicks over Socket Mode, for deployments with no public ingress.

With `slack.app_token` (an xapp- app-level token) set, the daemon opens an outbound WebSocket
to Slack instead of waiting for signed HTTP POSTs: apps.connections.open, then slack-sdk's
built-in SocketModeClient (no dependency beyond slack-sdk). Clicks arrive as `interactive`
envelopes. Each envelope is acknowledged first, because Slack redelivers one it has not seen
acked within about 3 seconds, and its payload then goes through the same checks as the HTTP
route (agent/slack_http.Interactions: allow-list, pending, expiry, atomic claim, one
execution). The HMAC signature check is skipped: only Slack can push on a connection our
app token opened. Redeliveries and replays are harmless because the store's atomic vote lets
one click win.

Reconnection: the SDK reconnects when Slack sends `disconnect`, closes the socket, or stops
answering pings (4 ping intervals). The SDK watches a session only once one exists, so the
first connection is retried here, with backoff. A watchdog here also replaces a session whose
pongs stopped for 2 ping intervals: when the peer closes TCP without a close frame, the SDK's
receive loop spins on EOF until five pings have failed (measured here: 25 s to reconnect and
17.7 s of CPU at the SDK's 5 s ping interval; with this watchdog and a 2 s interval, 3 s and
3 s of CPU). A healthy link costs one ping frame per interval.

Replies: over HTTP the clicker reads a short text in the response; a Socket Mode ack carries
none, so the same text ("Approved: executing now.", "Refused: ...") is POSTed to the payload's
`response_url` as an ephemeral message, on a thread of its own after the ack, with slack-sdk's
WebhookClient (retries on connection errors, 429 with Retry-After, and 5xx). The URL is the
credential, so no token is sent and the URL is never logged; only Slack's hooks host (or the
host of `slack.base_url`) is ever contacted.

Observability: `stats()` feeds /readyz (a detail only: a dropped socket keeps the replica ready,
since its HTTP routes and sweeps still work and readiness cannot reconnect it) and /metrics.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.socket_mode.builtin import SocketModeClient

from costwarden.agent.config import Settings
from costwarden.agent.server.http import Response
from costwarden.agent.server.metrics import ProcessCounters
from costwarden.agent.server.slack_http import Interactions
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.store import Store
from costwarden.tools.errors import ToolError

log = logging.getLogger("costwarden.slack.socket")
# WebhookClient logs the full URL at DEBUG, and at INFO when it retries a connection error;
# a response_url is a bearer credential for 30 minutes, so its logger shows warnings only.
_reply_log = log.getChild("reply")
_reply_log.setLevel(logging.WARNING)


class _RedactResponseUrls(logging.Filter):
    """The SDK logs each inbound envelope verbatim at DEBUG; keep those lines, minus the URL."""

    _KEY = re.compile(r'("response_url"\s*:\s*")[^"]*')

    def filter(self, record: logging.LogRecord) -> bool:
        if "response_url" in str(record.msg):
            record.msg, record.args = self._KEY.sub(r"\1[REDACTED]", record.getMessage()), None
        return True


_sdk_log = log.getChild("sdk")
_sdk_log.addFilter(_RedactResponseUrls())

MAX_BACKOFF_S = 60.0
REPLY_HOSTS = frozenset({"hooks.slack.com", "hooks.slack-gov.com"})


def reply_url_allowed(url: str, base_url: str | None) -> bool:
    """True for an https URL on Slack's hooks host, or on the host of `slack.base_url`.

    Only Slack can push on our socket, but a response_url is still data from the network: a
    daemon that POSTs wherever a payload points is a request forger inside the VPC.
    """
    try:
        u = urllib.parse.urlsplit(url)
        if u.username or u.password:
            return False
        if u.scheme == "https" and u.hostname in REPLY_HOSTS and u.port in (None, 443):
            return True
        if base_url:
            b = urllib.parse.urlsplit(base_url)
            return bool(b.netloc) and (u.scheme, u.netloc) == (b.scheme, b.netloc)
    except ValueError:  # a malformed port or netloc
        return False
    return False


def reply_text(status: int, body: dict[str, Any], policy: str | None = None) -> str:
    """The clicker's short reply: the HTTP route's text, or the refusal reason in words."""
    if status == 200 and body.get("text"):
        return str(body["text"])
    if status == 403 and policy:
        return f"Refused: you are not an allowed approver for policy {policy}; nothing was changed."
    return f"Refused: {body.get('error') or f'HTTP {status}'}; nothing was changed."


class _AnyServerErrorRetryHandler(ServerErrorRetryHandler):
    """slack-sdk's own handler retries 500 and 503 only; tools/slack.py retries every 5xx."""

    def _can_retry(self, *, state: Any, request: Any, response: Any = None, error: Any = None) -> bool:
        return response is not None and response.status_code >= 500


class _CountingClient(SocketModeClient):
    """SocketModeClient that reports each session it establishes, whoever asked for it:
    our first connect, our watchdog, or the SDK's monitor after a close or a `disconnect`."""

    on_connected: Callable[[], None] | None = None

    def connect(self) -> None:
        super().connect()
        if self.on_connected is not None:
            self.on_connected()


class SocketModeListener:
    """Owns one Socket Mode client: start() connects in the background, stop() closes it."""

    def __init__(self, settings: Settings, store: Store, policies: Callable[[], dict[str, LoadedPolicy]],
                 *, background: bool = True, ping_interval: float = 2.0, first_backoff: float = 1.0,
                 counters: ProcessCounters | None = None) -> None:
        if settings.slack.app_token is None:
            raise ToolError("slack.app_token is not set: Socket Mode needs the app's xapp- token")
        self.settings = settings
        self.interactions = Interactions(settings, store, policies, background=background, counters=counters)
        self.ping_interval = ping_interval
        self.first_backoff = first_backoff
        self.client: Any = None  # slack_sdk.socket_mode.builtin.SocketModeClient
        self.counts = {"envelopes": 0, "interactions": 0, "ignored": 0, "ack_failed": 0}
        self.envelope_types: Counter[str] = Counter()
        self.replies: Counter[str] = Counter()  # sent | failed | skipped
        self.sessions = 0  # sessions established; every one after the first is a reconnect
        self.connected_at: float | None = None
        self.last_error: str | None = None  # why the last connect failed; cleared by a success
        self._counts_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from slack_sdk import WebClient

        assert self.settings.slack.app_token is not None
        base_url = self.settings.slack.base_url
        web: dict[str, Any] = {"timeout": 10, "retry_handlers": [ConnectionErrorRetryHandler(max_retry_count=2),
                                                                 RateLimitErrorRetryHandler(max_retry_count=3)]}
        if base_url:
            web["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self.client = _CountingClient(app_token=self.settings.slack.app_token.get_secret_value(),
                                      web_client=WebClient(**web), logger=_sdk_log,
                                      ping_interval=self.ping_interval,
                                      auto_reconnect_enabled=True)
        self.client.on_connected = self._on_connected
        self.client.socket_mode_request_listeners.append(self._on_request)
        self._thread = threading.Thread(target=self._run, name="slack-socket", daemon=True)
        self._thread.start()

    def connected(self) -> bool:
        return bool(self.client is not None and self.client.is_connected())

    def stats(self) -> dict[str, Any]:
        """A consistent snapshot for /readyz and /metrics."""
        with self._counts_lock:
            since = self.connected_at
            return {"connected": self.connected(), "sessions": self.sessions, "reconnects": max(self.sessions - 1, 0),
                    "connected_since": datetime.fromtimestamp(since, timezone.utc).isoformat(timespec="seconds")
                    if since is not None else None,
                    "last_error": self.last_error, "envelopes": dict(self.envelope_types), "replies": dict(self.replies)}

    def stop(self) -> None:
        self._stop.set()
        if self.client is not None:
            self.client.close()
        if self._thread is not None:
            self._thread.join(5)

    # --- internals -------------------------------------------------------------------------
    def _run(self) -> None:
        self._connect_until_up()
        self._watch()

    def _watch(self) -> None:
        """Replace the session when no pong came back for 2 ping intervals (+1 s of slack)."""
        limit = 2 * self.ping_interval + 1
        grace_until = 0.0
        while not self._stop.wait(self.ping_interval / 2):
            last = getattr(self.client.current_session, "last_ping_pong_time", None)
            now = time.time()
            if last is None or now < grace_until or now - last <= limit:
                continue
            log.info("slack socket mode: no pong; opening a new connection", extra={"silent_s": round(now - last, 1)})
            grace_until = now + limit  # give the new session time to answer before judging it
            try:
                self.client.connect_to_new_endpoint(force=True)
            except Exception as exc:  # noqa: BLE001 - the SDK's own monitor keeps trying too
                self._failed(f"{exc.__class__.__name__}: {exc}")
                log.warning("slack socket mode: reconnect failed", extra={"error": f"{exc.__class__.__name__}: {exc}"})

    def _connect_until_up(self) -> None:
        """Open the first session; from then on the SDK's monitor reconnects by itself."""
        from slack_sdk.errors import SlackApiError

        backoff = self.first_backoff
        while not self._stop.is_set():
            try:
                self.client.connect_to_new_endpoint(force=True)
            except SlackApiError as exc:
                err = exc.response.get("error") if hasattr(exc.response, "get") else None
                self._failed(err or f"HTTP {exc.response.status_code}")
                log.error("slack.app_token: apps.connections.open failed; Socket Mode is down",
                          extra={"error": err or f"HTTP {exc.response.status_code}", "retry_in_s": backoff})
            except Exception as exc:  # noqa: BLE001 - a network error: try again
                self._failed(f"{exc.__class__.__name__}: {exc}")
                log.warning("slack socket mode: cannot connect",
                            extra={"error": f"{exc.__class__.__name__}: {exc}", "retry_in_s": backoff})
            else:
                if self.client.current_session is not None:
                    log.info("slack socket mode connected", extra={"session": self.client.session_id()})
                    return
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _count(self, key: str) -> None:
        with self._counts_lock:  # listeners run on the SDK's worker threads
            self.counts[key] += 1

    def _on_connected(self) -> None:
        with self._counts_lock:
            self.sessions += 1
            self.connected_at = time.time()
            self.last_error = None

    def _failed(self, error: str) -> None:
        """Keep why the link is down for /readyz, which (unlike the logs) has no formatter to redact it."""
        from costwarden.agent.server.logs import redact

        with self._counts_lock:
            self.last_error = redact(error)[:200]

    def _on_request(self, client: Any, req: Any) -> None:
        from slack_sdk.errors import SlackClientNotConnectedError
        from slack_sdk.socket_mode.response import SocketModeResponse

        self._count("envelopes")
        with self._counts_lock:
            self.envelope_types[str(req.type)] += 1
        try:  # ack first: the follow-up may take longer than Slack's 3-second redelivery timer
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        except (SlackClientNotConnectedError, OSError) as exc:
            # Slack will redeliver it; the store makes the second delivery a no-op
            self._count("ack_failed")
            log.warning("slack socket mode: ack not sent", extra={"envelope_id": req.envelope_id, "error": str(exc)})
        if req.type != "interactive":
            self._count("ignored")
            log.debug("slack socket mode: ignored envelope", extra={"type": req.type})
            return
        resp = self.interactions.handle(req.payload, transport="socket")
        self._count("interactions")  # counted once handled, so a caller can wait for the outcome
        log.info("slack interaction", extra={"transport": "socket", "status": resp.status,
                                             "envelope_id": req.envelope_id,
                                             "retry_attempt": getattr(req, "retry_attempt", None)})
        self._reply(req.payload, resp)

    # --- the reply to the clicker ------------------------------------------------------------
    def _reply(self, payload: Any, resp: Response) -> None:
        """Start posting the short reply; never waits for Slack (a 429 may ask for seconds)."""
        url = payload.get("response_url") if isinstance(payload, dict) else None
        if not isinstance(url, str) or not url:
            return  # not a message button (nothing to answer in)
        if not reply_url_allowed(url, self.settings.slack.base_url):
            with self._counts_lock:
                self.replies["skipped"] += 1
            log.warning("slack socket mode: response_url is not a Slack hook; no reply sent",
                        extra={"host": urllib.parse.urlsplit(url).hostname})
            return
        try:
            body = json.loads(resp.body)
        except ValueError:
            body = {}
        ours = self.interactions.foreign_origin(payload) is None  # never name our policies to another workspace
        text = reply_text(resp.status, body, self._policy_of(payload) if resp.status == 403 and ours else None)
        threading.Thread(target=self._post_reply, args=(url, text), name="slack-reply", daemon=True).start()

    def _policy_of(self, payload: dict[str, Any]) -> str | None:
        try:
            pair = self.interactions.store.get_approval(str(payload["actions"][0]["value"]))
        except (KeyError, IndexError, TypeError):
            return None
        return pair[0].policy if pair else None

    def _post_reply(self, url: str, text: str) -> None:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(url, timeout=10, logger=_reply_log, retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2), RateLimitErrorRetryHandler(max_retry_count=3),
            _AnyServerErrorRetryHandler(max_retry_count=3)])
        try:
            r = client.send(text=text, response_type="ephemeral", replace_original=False)
            outcome, detail = ("sent", None) if r.status_code == 200 else ("failed", f"HTTP {r.status_code} {r.body[:80]}")
        except Exception as exc:  # noqa: BLE001 - a lost reply must not kill the worker; the vote stands
            outcome, detail = "failed", f"{exc.__class__.__name__}: {exc}".replace(url, "<response_url>")
        with self._counts_lock:
            self.replies[outcome] += 1
        if detail:
            log.warning("slack socket mode: reply to the clicker not sent", extra={"error": detail})
