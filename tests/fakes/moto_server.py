"""A moto server on 127.0.0.1 that records every request it receives, by service and operation.

Recording at the server, not in our client code, is what proves a dry-run made no mutating
call: whatever our code did, nothing reached the "cloud".
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server


def operation_of(environ: dict[str, Any], body: bytes) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if "/operation/" in path:  # smithy rpc-v2 (CloudWatch's CBOR protocol)
        return path.rsplit("/operation/", 1)[-1]
    params = urllib.parse.parse_qs(body.decode("utf-8", "replace")) if body else {}
    if "Action" in params:
        return params["Action"][0]
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    return q.get("Action", [f"{environ.get('REQUEST_METHOD')} {path}"])[0]


class RecordingApp:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.bodies: list[tuple[str, bytes]] = []  # (operation, request body), in arrival order
        self.delays: dict[str, tuple[float, bytes]] = {}  # operation -> (seconds to hold the answer, only if
        # the body contains these bytes): the backend has applied the change, the caller waits

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        op = None
        if not environ.get("PATH_INFO", "").startswith("/moto-api"):
            op = operation_of(environ, body)
            with self.lock:
                self.calls.append(op)
                self.bodies.append((op, body))
        result = self.app(environ, start_response)
        delay, needle = self.delays.get(op or "", (0.0, b""))
        if delay and needle in body:
            result = list(result)  # the backend has applied the change; the caller waits for the answer
            time.sleep(delay)
        return result


class RecordingMotoServer(ThreadedMotoServer):
    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.recorder = RecordingApp(DomainDispatcherApplication(create_backend_app))

    def _server_entry(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server(self._ip_address, self._port, self.recorder, True)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    @property
    def calls(self) -> list[str]:
        with self.recorder.lock:
            return list(self.recorder.calls)

    def requests_for(self, operation: str) -> list[dict[str, str]]:
        """The parameters of every `operation` request received (query protocol: EC2, STS, ...), in
        order: `requests_for("StopInstances")` counts stops, and says which instance each named."""
        with self.recorder.lock:
            bodies = [b for op, b in self.recorder.bodies if op == operation]
        return [{k: v[0] for k, v in urllib.parse.parse_qs(b.decode("utf-8", "replace")).items()} for b in bodies]

    def reset(self) -> None:
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).read()
        with self.recorder.lock:
            self.recorder.calls.clear()
            self.recorder.bodies.clear()
            self.recorder.delays.clear()

    def hold(self, operation: str, seconds: float, *, matching: str = "") -> None:
        """Apply `operation`, then hold its answer `seconds` (only requests whose body contains
        `matching`): the change is made in the "cloud" while the caller still waits."""
        self.recorder.delays[operation] = (seconds, matching.encode())

    def clear_calls(self) -> None:
        with self.recorder.lock:
            self.recorder.calls.clear()
            self.recorder.bodies.clear()


def mutating(calls: list[str]) -> list[str]:
    from costwarden.tools.aws.session import READ_PREFIXES

    return [c for c in calls if not c.startswith(READ_PREFIXES) and c not in ("AssumeRole",)]


__all__ = ["RecordingMotoServer", "mutating", "json"]
