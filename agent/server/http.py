"""The daemon's HTTP endpoints on one small stdlib server: /healthz, /readyz, /metrics.

A route table keeps the server ignorant of what it serves; the Slack interactions route
plugs in here too.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("costwarden.http")

MAX_BODY = 1 << 20


class Response:
    def __init__(self, status: int, body: bytes | str | dict[str, Any], content_type: str = "application/json") -> None:
        self.status = status
        if isinstance(body, dict):
            body = json.dumps(body)
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type


Handler = Callable[[dict[str, str], bytes], Response]


class HttpServer:
    def __init__(self, host: str, port: int, routes: dict[tuple[str, str], Handler]) -> None:
        self.routes = routes
        server_self = self

        class _H(BaseHTTPRequestHandler):
            server_version = "costwarden"
            sys_version = ""

            def _dispatch(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                handler = server_self.routes.get((method, path))
                if handler is None:
                    known = any(p == path for _, p in server_self.routes)
                    resp = Response(405 if known else 404, {"error": "method not allowed" if known else "not found"})
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > MAX_BODY:
                        resp = Response(413, {"error": "request body too large"})
                    else:
                        body = self.rfile.read(length) if length else b""
                        try:
                            resp = handler({k.lower(): v for k, v in self.headers.items()}, body)
                        except Exception:  # noqa: BLE001 - a handler bug is a 500, not a dead server
                            log.exception("handler failed", extra={"path": path})
                            resp = Response(500, {"error": "internal error"})
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(resp.body)))
                self.end_headers()
                self.wfile.write(resp.body)

            def do_GET(self) -> None:  # noqa: N802
                self._dispatch("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._dispatch("POST")

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt % args)

        self.httpd = ThreadingHTTPServer((host, port), _H)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
