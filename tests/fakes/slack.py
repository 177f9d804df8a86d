"""A fake Slack Web API on 127.0.0.1 for the real slack-sdk WebClient, and a request signer.

It checks the bot token like Slack does (invalid_auth otherwise), records every call, and
can be told to fail the next calls of a method: HTTP 429 with Retry-After, HTTP 500, or a
Slack error such as invalid_auth.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def sign(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """Headers Slack sends with an interaction: v0 HMAC-SHA256 over `v0:timestamp:body`."""
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def interaction(user: str, button: str, action_id: str) -> bytes:
    payload = {"type": "block_actions", "user": {"id": user, "username": user.lower()},
               "actions": [{"action_id": button, "value": action_id, "type": "button"}],
               "container": {"type": "message"}, "response_url": "http://127.0.0.1:9/unused"}
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


class FakeSlack:
    def __init__(self, token: str = "xoxb-test-token-0000", groups: dict[str, list[str]] | None = None) -> None:
        self.token = token
        self.groups = groups or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures: dict[str, list[tuple[int, str | None, float | None]]] = {}
        self.lock = threading.Lock()
        self._ts = 0
        fake = self

        class H(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                method = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                ctype = self.headers.get("Content-Type", "")
                if "json" in ctype and raw:
                    args = json.loads(raw)
                else:
                    args = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode() or self.path.partition("?")[2]).items()}
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
