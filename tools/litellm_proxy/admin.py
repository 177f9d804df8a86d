"""An httpx client for the LiteLLM proxy's management API: read and set a team's or a key's limits.

Endpoints, as LiteLLM documents them (litellm/proxy/management_endpoints/, docs.litellm.ai/docs/proxy/users):
`GET /team/info?team_id=T` answers `{"team_id", "team_info": {...}, "keys": [...]}`;
`GET /key/info?key=K` answers `{"key", "info": {...}}`; `POST /team/update` takes `{"team_id", ...fields}`
and `POST /key/update` `{"key", ...fields}`, each a merge patch (a field left out keeps its value, an
explicit null clears it). Every request carries `Authorization: Bearer <master key>`.

Why a transport of our own: dry-run is enforced below this client's code. `GuardedTransport` refuses any
request that is not a read before it leaves the process (DryRunViolation), and counts every request in
the sweep's CallLog, so a dry-run sweep provably makes zero POSTs. Reads are retried on 429 and 5xx
(tenacity, Retry-After honoured); updates are not retried: the tool reads the state back instead.
"""

from __future__ import annotations

from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from costwarden.tools.calls import CallLog
from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.litellm_proxy.caps import Scope
from costwarden.tools.litellm_proxy.settings import LiteLLMProxySettings

READS = frozenset({"GET", "HEAD", "OPTIONS"})
ID_FIELD: dict[str, str] = {"team": "team_id", "key": "key"}
SERVICE = "litellm"


def call_name(request: httpx.Request) -> str:
    """'litellm.POST /team/update': the CallLog's name for a request (no query string: it may hold a key)."""
    return f"{SERVICE}.{request.method} {request.url.path}"


def litellm_call_log() -> CallLog:
    return CallLog(lambda name: name.partition(".")[2].split(" ", 1)[0] not in READS)


class GuardedTransport(httpx.BaseTransport):
    """Counts every request; in dry-run refuses every one that is not a read, before it is sent."""

    def __init__(self, inner: httpx.BaseTransport, *, dry_run: bool, call_log: CallLog) -> None:
        self.inner, self.dry_run, self.call_log = inner, dry_run, call_log

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = call_name(request)
        if self.dry_run and request.method not in READS:
            self.call_log.add(name, refused=True)
            raise DryRunViolation(SERVICE, f"{request.method} {request.url.path}")
        self.call_log.add(name)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class ProxyHTTPError(ToolError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ProxyHTTPError):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (httpx.TransportError,)) and not isinstance(exc, DryRunViolation)


def _message(resp: httpx.Response) -> str:
    """LiteLLM's error body: `{"error": {"message": ...}}` (ProxyException) or `{"detail": ...}` (HTTPException)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict):
        err = body.get("error") if isinstance(body.get("error"), dict) else None
        detail = body.get("detail")
        if err and err.get("message"):
            return str(err["message"])[:200]
        if isinstance(detail, dict):
            return str(detail.get("error") or detail.get("message") or detail)[:200]
        if detail:
            return str(detail)[:200]
    return str(body)[:200]


class LiteLLMAdmin:
    """Reads and updates one team's or key's limits. Build one per sweep or action; close it after."""

    def __init__(self, settings: LiteLLMProxySettings, *, dry_run: bool, call_log: CallLog | None = None,
                 inner: httpx.BaseTransport | None = None) -> None:
        self.settings, self.dry_run, self._inner = settings, dry_run, inner
        self.call_log = call_log or litellm_call_log()
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        """Built on the first request, so a missing setting fails that action (recorded), not its caller."""
        s = self.settings
        if not s.url:
            raise ToolError("litellm_proxy.url is not set: cap-spend needs the LiteLLM proxy's address")
        if s.master_key is None:
            raise ToolError("litellm_proxy.master_key is not set: the management API needs the proxy's master key")
        if self._http is None:
            transport = GuardedTransport(self._inner or httpx.HTTPTransport(), dry_run=self.dry_run,
                                         call_log=self.call_log)
            self._http = httpx.Client(base_url=s.url, transport=transport, timeout=s.timeout_seconds,
                                      headers={"Authorization": f"Bearer {s.master_key.get_secret_value()}"})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        http = self._client()
        try:
            resp = http.request(method, path, **kwargs)
        except DryRunViolation:
            raise
        except httpx.TransportError as exc:
            raise ProxyHTTPError(0, f"litellm proxy {method} {path}: {exc.__class__.__name__}") from None
        if resp.status_code >= 400:
            raise ProxyHTTPError(resp.status_code, f"litellm proxy {method} {path}: HTTP {resp.status_code}: "
                                                   f"{_message(resp)}")
        try:
            body = resp.json()
        except ValueError:
            raise ProxyHTTPError(resp.status_code, f"litellm proxy {method} {path}: answer is not JSON") from None
        return body if isinstance(body, dict) else {"data": body}

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        s = self.settings
        retrying = Retrying(retry=retry_if_exception(_retryable), stop=stop_after_attempt(s.retries + 1),
                            wait=wait_exponential(multiplier=s.retry_wait_seconds, max=30), reraise=True)
        for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.call_log.add_retries(f"{SERVICE}.GET {path}", 1)
                return self._send("GET", path, params=params)
        raise AssertionError("unreachable")  # pragma: no cover - reraise=True

    def info(self, scope: Scope, target: str) -> dict[str, Any]:
        """The team's or key's row as the proxy stores it (`team_info` / `info`)."""
        if scope == "team":
            return dict(self._get("/team/info", {"team_id": target}).get("team_info") or {})
        return dict(self._get("/key/info", {"key": target}).get("info") or {})

    def update(self, scope: Scope, target: str, fields: dict[str, Any]) -> dict[str, Any]:
        """One POST /team/update or /key/update with these fields (None clears a limit); never retried."""
        return self._send("POST", f"/{scope}/update", json={ID_FIELD[scope]: target, **fields})

