"""The daemon's HTTP surface: /healthz, /readyz, /metrics and /slack/interactions.

A Starlette app served by uvicorn on an asyncio loop in one thread of the daemon. The public
route takes requests from anyone on the network before any signature is checked, so the limits
hold for every request, not just the well-formed ones:

- the port is bound (backlog `Limits.backlog`) when HttpServer is built, before the daemon
  migrates anything, so "port in use" is a start-up error and not a traceback after a migration;
- the request line and headers must arrive within `header_timeout_s` and fit in
  `max_header_bytes` (h11); idle keep-alive connections close after `keep_alive_s`;
- a body is read in chunks (fixed length or chunked) and refused with 413 the moment it passes
  `max_body`, without reading more; a body that trickles in longer than `body_timeout_s` is 408;
- `max_connections` caps open connections and requests in flight (uvicorn answers 503 above it);
- malformed requests are 4xx (h11 answers a bad Content-Length or request line with 400).

Handlers stay synchronous functions `(headers, body) -> Response` and run in a worker thread, so a
slow store call never blocks the loop that answers /healthz.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costwarden.agent.server.logs import RateLimitedLog, RateLimitFilter
from costwarden.agent.server.metrics import ProcessCounters
from costwarden.state.errors import CostwardenError

log = logging.getLogger("costwarden.http")

MAX_BODY = 1 << 20  # a Slack click is a few KB


@dataclass(frozen=True)
class Limits:
    """What one client may hold of the server; the defaults suit a Slack endpoint and a scraper."""

    max_body: int = MAX_BODY
    body_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 512
    backlog: int = 1024
    shutdown_grace_s: float = 5.0


class Response:
    def __init__(self, status: int, body: bytes | str | dict[str, Any], content_type: str = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        if isinstance(body, dict):
            body = json.dumps(body)
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type


Handler = Callable[[dict[str, str], bytes], Response]


class HttpStartError(CostwardenError):
    """The port cannot be bound: in use, out of range, or not ours to take."""


class BodyRefused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket, or a one-line HttpStartError (never a traceback)."""
    if not 0 <= port <= 65535:
        raise HttpStartError(f"--port {port} is out of range (0-65535; 0 picks a free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise HttpStartError(f"cannot listen on {host}:{port}: {exc}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise HttpStartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


async def read_body(receive_stream: Any, content_length: str | None, limits: Limits,
                    max_body: int | None = None) -> bytes:
    """The request body, refusing as soon as it is too big or too slow; never more than max_body+chunk."""
    cap = limits.max_body if max_body is None else max_body
    if content_length is not None:
        if not content_length.strip().isdigit():  # h11 refuses these first; kept for other servers
            raise BodyRefused(400, "bad_content_length", "malformed Content-Length")
        if int(content_length) > cap:
            raise BodyRefused(413, "body_too_large", f"request body too large (limit {cap} bytes)")
    buf = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in receive_stream:
                buf += chunk
                if len(buf) > cap:
                    raise BodyRefused(413, "body_too_large", f"request body too large (limit {cap} bytes)")
    except TimeoutError:
        raise BodyRefused(408, "body_timeout", f"request body not received within {limits.body_timeout_s:g}s") from None
    return bytes(buf)


class HttpServer:
    """Binds at construction; `start()` serves in a thread, `stop()` drains and closes."""

    def __init__(self, host: str, port: int, routes: dict[tuple[str, str], Handler], *,
                 limits: Limits | None = None, counters: ProcessCounters | None = None) -> None:
        self.routes = routes
        self.limits = limits or Limits()
        self.counters = counters or ProcessCounters()
        self.sock = bind(host, port, self.limits.backlog)
        self._log = RateLimitedLog(log)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def refused(self, reason: str, status: int, **fields: Any) -> None:
        """An unauthenticated or malformed request: a counter and a bounded log line, no database row."""
        self.counters.add("http_refusals", {reason: 1})
        self._log.warning("http request refused", reason, status=status, **fields)

    # --- the ASGI app --------------------------------------------------------------------
    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        return Starlette(routes=[Route("/{path:path}", self._endpoint, methods=methods)])

    async def _endpoint(self, request: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.requests import ClientDisconnect
        from starlette.responses import Response as StarletteResponse

        path = request.url.path
        # h11 caps headers that arrive in pieces; a block that arrives whole is measured here
        if sum(len(k) + len(v) + 4 for k, v in request.scope["headers"]) > self.limits.max_header_bytes:
            self.refused("headers_too_large", 431, path=path)
            return _json(431, {"error": f"request headers too large (limit {self.limits.max_header_bytes} bytes)"},
                         close=True)
        handler = self.routes.get((request.method, path))
        if handler is None:
            known = any(p == path for _, p in self.routes)
            return _json(405 if known else 404, {"error": "method not allowed" if known else "not found"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        early = getattr(handler, "before_body", None)  # e.g. a bearer token: refused before a byte of body is read
        refusal = early(headers) if early is not None else None
        if refusal is not None:
            self.refused("unauthorized", refusal.status, path=path)
            return StarletteResponse(refusal.body, status_code=refusal.status, media_type=refusal.content_type,
                                     headers={**refusal.headers, "Connection": "close"})
        body = b""
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                # a handler may carry its own cap (`max_body`): OTLP batches are bigger than Slack clicks
                body = await read_body(request.stream(), request.headers.get("content-length"), self.limits,
                                       getattr(handler, "max_body", None))
            except BodyRefused as exc:
                self.refused(exc.reason, exc.status, path=path)
                return _json(exc.status, {"error": exc.message}, close=True)
            except ClientDisconnect:
                return _json(400, {"error": "client went away"}, close=True)
        try:
            resp = await run_in_threadpool(handler, headers, body)
        except Exception:  # noqa: BLE001 - a handler bug is a 500, not a dead server
            log.exception("handler failed", extra={"path": path})
            resp = Response(500, {"error": "internal error"})
        return StarletteResponse(resp.body, status_code=resp.status, media_type=resp.content_type,
                                 headers=resp.headers or None)

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        import uvicorn

        server_log = logging.getLogger("uvicorn.error")  # one warning per malformed request, else
        if not any(isinstance(f, RateLimitFilter) for f in server_log.filters):
            server_log.addFilter(RateLimitFilter())

        config = uvicorn.Config(
            self.app(), http=guarded_h11(self.limits, self.refused), lifespan="off", log_config=None,
            access_log=False, server_header=False, limit_concurrency=self.limits.max_connections,
            backlog=self.limits.backlog, timeout_keep_alive=int(max(1, self.limits.keep_alive_s)),
            h11_max_incomplete_event_size=self.limits.max_header_bytes,
            timeout_graceful_shutdown=int(max(1, self.limits.shutdown_grace_s)))
        self._server = uvicorn.Server(config)
        failed: list[BaseException] = []

        def _serve() -> None:
            try:
                self._server.run(sockets=[self.sock])
            except BaseException as exc:  # noqa: BLE001 - reported to start() below
                failed.append(exc)

        self._thread = threading.Thread(target=_serve, name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started and not failed and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._server.started:
            raise HttpStartError(f"the HTTP server did not start: {failed[0] if failed else 'timed out'}")

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(self.limits.shutdown_grace_s + 5)
        self.sock.close()


def _json(status: int, body: dict[str, Any], *, close: bool = False) -> Any:
    from starlette.responses import JSONResponse

    # close: the rest of an unread body must not be parsed as the next request
    return JSONResponse(body, status_code=status, headers={"Connection": "close"} if close else None)


def guarded_h11(limits: Limits, refused: Callable[..., None]) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline for the request line and headers, and its 400s counted.

    uvicorn times out idle keep-alive connections but not a request whose headers never finish
    (slow-loris): each would hold a connection slot until the client gave up.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _armed_for: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._armed_for = self.cycle
            self._header_timer = self.loop.call_later(limits.header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                refused("header_timeout", 408)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not None and self.cycle is not self._armed_for:
                self._disarm()  # a new request's headers are complete: the body has its own deadline

        def send_400_response(self, msg: str) -> None:
            refused("malformed_request", 400)  # h11 could not parse it: bad Content-Length, request line...
            super().send_400_response(msg)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11
