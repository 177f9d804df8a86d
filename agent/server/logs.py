"""JSON-lines logging with secrets redacted: one event per line, fit for any log pipeline."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any

# Slack tokens, AWS access keys, bearer tokens, and key=value pairs whose key says "secret".
_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{8,}"),
    re.compile(r"xapp-[A-Za-z0-9-]{8,}"),
    re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/-]{8,}=*"),
    re.compile(r"sk-[A-Za-z0-9_-]{16,}"),
]
_SECRET_KEYS = re.compile(r"(?i)(secret|token|password|passwd|api[_-]?key|signing|credential)")
_KV = re.compile(r"(?i)\b([\w.-]*(?:secret|token|password|api[_-]?key)[\w.-]*)\s*[=:]\s*(\S+)")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    for p in _PATTERNS:
        text = p.sub(REDACTED, text)
    text = _KV.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)


def redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    return value


_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STD and not key.startswith("_"):
                event[key] = redact_value(key, value)
        if record.exc_info:
            event["error"] = redact(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(event, default=str)


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a line is logged, not the one it was created with:
    a command run in-process (tests, an embedding program) may swap and close stderr, and a
    background thread logging later must not hit the closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "urllib3", "apscheduler.executors.default", "werkzeug", "httpx", "LiteLLM", "websockets"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


class RateLimitedLog:
    """At most `burst` lines per key per `window_s`; the next line after a quiet spell says how many it hid.

    For events anyone on the network can cause (refused requests): a flood must cost neither disk
    nor the log pipeline, yet the first lines of it, and its size, must still show.
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 5, window_s: float = 60.0) -> None:
        import threading

        self.logger, self.burst, self.window_s = logger, burst, window_s
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (window start, logged, suppressed)

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether a line for `key` may be written now, and how many were hidden before it."""
        import time

        now = time.monotonic()
        with self._lock:
            start, logged, hidden = self._windows.get(key, (now, 0, 0))
            if now - start >= self.window_s:
                start, logged = now, 0
            if logged >= self.burst:
                self._windows[key] = (start, logged, hidden + 1)
                return False, hidden + 1
            self._windows[key] = (start, logged + 1, 0)
            return True, hidden

    def warning(self, event: str, key: str, **fields: Any) -> bool:
        """Log `event` with `fields` unless `key` used up its burst; True if a line was written."""
        ok, hidden = self.allow(key)
        if not ok:
            return False
        extra = {"reason": key, **fields}
        if hidden:
            extra["suppressed_since_last"] = hidden
        self.logger.warning(event, extra=extra)
        return True


class RateLimitFilter(logging.Filter):
    """The same bound for a library's own warnings (uvicorn's "Invalid HTTP request received."), by message."""

    def __init__(self, burst: int = 5, window_s: float = 60.0) -> None:
        super().__init__()
        self.limiter = RateLimitedLog(logging.getLogger("costwarden"), burst=burst, window_s=window_s)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True  # errors are never dropped
        ok, hidden = self.limiter.allow(str(record.msg))
        if ok and hidden:
            record.suppressed_since_last = hidden
        return ok
