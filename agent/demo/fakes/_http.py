"""A threaded stdlib HTTP server on 127.0.0.1:<free port> that records every request."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Reply(Exception):
    """Raised by a route to answer with a status and a JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class FakeServer:
    """Subclasses implement `route(method, path, query, body) -> (status, json body)`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []  # (method, path) of everything received, in order
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append((self.command, parts.path))
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                try:
                    body: Any = {}
                    if raw:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            body = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
                    status, out = fake.route(self.command, parts.path, query, body)
                except Reply as r:
                    status, out = r.status, r.body
                except Exception as exc:  # noqa: BLE001 - a fake's bug is a 500, not a hung client
                    status, out = 500, {"error": {"code": 500, "message": f"fake: {exc!r}"}}
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *_args: Any) -> None:  # no request lines in the user's terminal
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # stop() waits for the loop to see the request: at the default 0.5 s poll that was half a
        # second of every demo's exit per server; 0.1 s costs nothing measurable while idle
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- what tests look at -------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[tuple[str, str]]:
        with self.lock:
            return [c for c in self.requests if method is None or c[0] == method]

    def mutating_calls(self) -> list[tuple[str, str]]:
        return [c for c in self.calls() if c[0] not in ("GET", "HEAD")]

    def clear_calls(self) -> None:
        with self.lock:
            self.requests.clear()

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        raise NotImplementedError
