"""A fake Slack Web API on 127.0.0.1 for the real slack-sdk WebClient, and a request signer.

It checks the bot token like Slack does (invalid_auth otherwise), records every call, and
can be told to fail the next calls of a method: HTTP 429 with Retry-After, HTTP 500, or a
Slack error such as invalid_auth. It also serves interaction `response_url`s
(`response_url()`, POST /actions/...): each POST is recorded in `replies` with the
Authorization header it carried; `fail_next("response_url", ...)` makes them fail too.

Given an app token it also plays Slack's Socket Mode: apps.connections.open (app token only)
hands out a ws://127.0.0.1 URL with a one-use ticket, served by a real WebSocket server
(`websockets`), so slack-sdk's own SocketModeClient connects to it unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def sign(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """Headers Slack sends with an interaction: v0 HMAC-SHA256 over `v0:timestamp:body`."""
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


TEAM_ID, APP_ID = "T0COSTWARDEN", "A0COSTWARDEN"


def interaction(user: str, button: str, action_id: str, response_url: str = "http://127.0.0.1:9/unused",
                team: str = TEAM_ID, app: str = APP_ID) -> bytes:
    payload = {"type": "block_actions", "team": {"id": team, "domain": "example"}, "api_app_id": app,
               "user": {"id": user, "username": user.lower(), "team_id": team},
               "actions": [{"action_id": button, "value": action_id, "type": "button"}],
               "container": {"type": "message"}, "response_url": response_url}
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def block_actions(user: str, button: str, action_id: str, response_url: str = "http://127.0.0.1:9/unused") -> dict[str, Any]:
    """The block_actions payload of a button click, as Slack sends it (HTTP form field or envelope)."""
    body = interaction(user, button, action_id, response_url)
    return json.loads(urllib.parse.parse_qs(body.decode())["payload"][0])


class FakeSocketMode:
    """Slack's side of Socket Mode: one-use tickets, `hello`, envelopes out, acks in, dropped links.

    Protocol as documented (docs.slack.dev, "Using Socket Mode"): on connect the server sends
    {"type": "hello"}; each event is {"envelope_id", "type", "payload", "accepts_response_payload"};
    the app answers {"envelope_id": ...} to acknowledge it.
    """

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self.lock = threading.Condition()
        self.tickets: set[str] = set()
        self.connections: list[Any] = []  # every accepted connection, the live one last
        self.acks: list[dict[str, Any]] = []
        self.refused = 0  # connection attempts with an unknown or used ticket
        self.server = serve(self._handler, "127.0.0.1", 0, compression=None, ping_interval=None,
                            process_request=self._check_ticket)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.socket.getsockname()[1])

    def issue_url(self) -> str:
        ticket = uuid.uuid4().hex
        with self.lock:
            self.tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id=A0COSTWARDEN"

    def _check_ticket(self, conn: Any, request: Any) -> Any:
        ticket = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query).get("ticket", [""])[0]
        with self.lock:
            if ticket in self.tickets:
                self.tickets.discard(ticket)
                return None
            self.refused += 1
        return conn.respond(401, "invalid ticket\n")

    def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0COSTWARDEN"},
                            "debug_info": {"host": "fake", "approximate_connection_time": 3600}}))
        with self.lock:
            self.connections.append(ws)
            self.lock.notify_all()
        try:
            for raw in ws:
                msg = json.loads(raw)
                if "envelope_id" in msg:
                    with self.lock:
                        self.acks.append(msg)
                        self.lock.notify_all()
        except (ConnectionClosed, ValueError):
            pass

    def _wait(self, predicate: Any, timeout: float, what: str) -> Any:
        with self.lock:
            if not self.lock.wait_for(predicate, timeout):
                raise AssertionError(f"socket mode fake: timed out waiting for {what}")
            return predicate()

    def wait_connected(self, count: int = 1, timeout: float = 15) -> Any:
        """Wait until `count` connections were accepted and the latest is open; return it."""
        from websockets.protocol import State

        self._wait(lambda: len(self.connections) >= count and self.connections[-1].state is State.OPEN,
                   timeout, f"connection #{count}")
        return self.connections[-1]

    def send(self, payload: dict[str, Any], *, type: str = "interactive", envelope_id: str | None = None,
             retry_attempt: int = 0) -> str:
        """Send one envelope on the live connection; return its envelope_id."""
        envelope_id = envelope_id or str(uuid.uuid4())
        ws = self.wait_connected(len(self.connections) or 1)
        ws.send(json.dumps({"envelope_id": envelope_id, "type": type, "payload": payload,
                            "accepts_response_payload": False, "retry_attempt": retry_attempt,
                            "retry_reason": "timeout" if retry_attempt else ""}))
        return envelope_id

    def wait_ack(self, envelope_id: str, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """Wait until the app acknowledged `envelope_id` `count` times; return those acks."""
        def acked() -> list[dict[str, Any]] | None:
            hits = [a for a in self.acks if a["envelope_id"] == envelope_id]
            return hits if len(hits) >= count else None

        return self._wait(acked, timeout, f"ack of {envelope_id}")

    def drop(self) -> None:
        """Cut the live connection without a close handshake, as a lost network path would."""
        ws = self.wait_connected(len(self.connections) or 1)
        ws.socket.shutdown(2)  # socket.SHUT_RDWR
        ws.socket.close()

    def stop(self) -> None:
        self.server.shutdown()


class FakeSlack:
    def __init__(self, token: str = "xoxb-test-token-0000", groups: dict[str, list[str]] | None = None,
                 app_token: str | None = None) -> None:
        self.token = token
        self.app_token = app_token
        self.socket = FakeSocketMode() if app_token else None
        self.groups = groups or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.replies: list[dict[str, Any]] = []  # POSTs to a response_url: {"path", "authorization", "body"}
        self.failures: dict[str, list[tuple[int, str | None, float | None]]] = {}
        self.lock = threading.Lock()
        self._ts = 0
        fake = self

        class H(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                hook = self.path.startswith("/actions/")  # a response_url, not a Web API method
                method = "response_url" if hook else self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype and raw:
                    args = json.loads(raw)
                else:
                    args = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode() or self.path.partition("?")[2]).items()}
                if hook:
                    with fake.lock:
                        fake.replies.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                                             "body": args})
                status, body, headers = fake.respond(method, self.headers.get("Authorization", ""), args)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api/"

    def response_url(self) -> str:
        """A fresh response_url on this fake, as Slack puts one in each interaction payload."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/actions/T0COSTWARDEN/{uuid.uuid4().int % 10**12}/{uuid.uuid4().hex}"

    def fail_next(self, method: str, *, status: int = 200, error: str | None = None, retry_after: float | None = None,
                  times: int = 1) -> None:
        with self.lock:
            self.failures.setdefault(method, []).extend([(status, error, retry_after)] * times)

    def methods(self) -> list[str]:
        with self.lock:
            return [m for m, _ in self.calls]

    def respond(self, method: str, auth: str, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.calls.append((method, args))
            queued = self.failures.get(method)
            failure = queued.pop(0) if queued else None
        if failure:
            status, error, retry_after = failure
            if status == 429:
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(int(retry_after or 1))}
            if status >= 500:
                return status, {"ok": False, "error": "internal_error"}, {}
            return 200, {"ok": False, "error": error or "fatal_error"}, {}
        if method == "response_url":  # the URL is the credential: no token, and Slack answers "ok"
            return 200, {"ok": True}, {}
        if method == "apps.connections.open":  # only an app-level token may open a socket
            if self.socket is None or auth != f"Bearer {self.app_token}":
                return 200, {"ok": False, "error": "invalid_auth" if auth.startswith("Bearer xapp-")
                             else "not_allowed_token_type"}, {}
            return 200, {"ok": True, "url": self.socket.issue_url()}, {}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if method == "chat.postMessage":
            with self.lock:
                self._ts += 1
                ts = f"1700000000.{self._ts:06d}"
            return 200, {"ok": True, "channel": "C0APPROVALS", "ts": ts, "message": {"text": args.get("text")}}, {}
        if method == "chat.update":
            return 200, {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}, {}
        if method == "usergroups.users.list":
            return 200, {"ok": True, "users": self.groups.get(args.get("usergroup", ""), [])}, {}
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.socket is not None:
            self.socket.stop()
