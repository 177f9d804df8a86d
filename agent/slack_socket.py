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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.config import Settings
from agent.slack_http import Interactions
from policies.loader import LoadedPolicy
from state.store import Store
from tools.errors import ToolError

log = logging.getLogger("costwarden.slack.socket")

MAX_BACKOFF_S = 60.0


class SocketModeListener:
    """Owns one Socket Mode client: start() connects in the background, stop() closes it."""

    def __init__(self, settings: Settings, store: Store, policies: Callable[[], dict[str, LoadedPolicy]],
                 *, background: bool = True, ping_interval: float = 2.0, first_backoff: float = 1.0) -> None:
        if settings.slack.app_token is None:
            raise ToolError("slack.app_token is not set: Socket Mode needs the app's xapp- token")
        self.settings = settings
        self.interactions = Interactions(settings, store, policies, background=background)
        self.ping_interval = ping_interval
        self.first_backoff = first_backoff
        self.client: Any = None  # slack_sdk.socket_mode.builtin.SocketModeClient
        self.counts = {"envelopes": 0, "interactions": 0, "ignored": 0, "ack_failed": 0}
        self._counts_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        from slack_sdk import WebClient
        from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
        from slack_sdk.socket_mode.builtin import SocketModeClient

        assert self.settings.slack.app_token is not None
        base_url = self.settings.slack.base_url
        web: dict[str, Any] = {"timeout": 10, "retry_handlers": [ConnectionErrorRetryHandler(max_retry_count=2),
                                                                 RateLimitErrorRetryHandler(max_retry_count=3)]}
        if base_url:
            web["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
        self.client = SocketModeClient(app_token=self.settings.slack.app_token.get_secret_value(),
                                       web_client=WebClient(**web), logger=log.getChild("sdk"),
                                       ping_interval=self.ping_interval,
                                       auto_reconnect_enabled=True)
        self.client.socket_mode_request_listeners.append(self._on_request)
        self._thread = threading.Thread(target=self._run, name="slack-socket", daemon=True)
        self._thread.start()

    def connected(self) -> bool:
        return bool(self.client is not None and self.client.is_connected())

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
                log.error("slack.app_token: apps.connections.open failed; Socket Mode is down",
                          extra={"error": err or f"HTTP {exc.response.status_code}", "retry_in_s": backoff})
            except Exception as exc:  # noqa: BLE001 - a network error: try again
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

    def _on_request(self, client: Any, req: Any) -> None:
        from slack_sdk.errors import SlackClientNotConnectedError
        from slack_sdk.socket_mode.response import SocketModeResponse

        self._count("envelopes")
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
