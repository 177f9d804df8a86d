"""One retry layer for AWS: botocore's own retry modes, configured once per client, and counted.

Why botocore and nothing on top: a second layer (tenacity around botocore) multiplies attempts
(6 x 2 = 12 sends per call) and still misses every call nobody remembered to wrap, such as
GetCallerIdentity. botocore's `standard` and `adaptive` modes retry every operation of every
client: throttling codes of every protocol (`Throttling`, `RequestLimitExceeded`,
`ThrottlingException`, Cost Explorer's `LimitExceededException`, ...), 500/502/503/504 and
connection errors, with exponential back-off, jitter and a retry quota. Costwarden has no AWS
call that botocore does not retry, so tenacity appears nowhere under tools/aws/ (it stays for
Slack and the LLM client, whose SDKs retry differently).

Retries are counted by service and API operation, from botocore's own figure
(`ResponseMetadata.RetryAttempts` after a call; the retry context's attempt number after a
call that failed without a response): process-wide for `/metrics`, and in the sweep's CallLog
for the audit output. Nothing here imports botocore at module level, so /metrics stays cheap.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from costwarden.tools.aws.settings import RetrySettings
from costwarden.tools.calls import CallLog

_lock = threading.Lock()
_RETRIES: Counter[tuple[str, str]] = Counter()  # (service, operation) -> retries; read by /metrics


def retry_config(settings: RetrySettings | None = None) -> dict[str, Any]:
    """`botocore.config.Config(retries=...)`: the mode, and `total_max_attempts` (all sends, the
    first included; botocore's `max_attempts` key would count retries only)."""
    s = settings or RetrySettings()
    return {"mode": s.mode, "total_max_attempts": s.max_attempts}


def record_retries(service: str, operation: str, n: int, call_log: CallLog | None = None) -> None:
    if n <= 0:
        return
    with _lock:
        _RETRIES[(service, operation)] += n
    if call_log is not None:
        call_log.add_retries(f"{service}.{operation}", n)


def retry_counts() -> dict[tuple[str, str], int]:
    """Retries made by this process since it started, by (service, operation)."""
    with _lock:
        return dict(_RETRIES)


def count_retries(client: Any, call_log: CallLog | None = None) -> None:
    """Count this client's retries (see the module docstring) in the process and in `call_log`."""
    service = client.meta.service_model.service_name

    def after_call(parsed: Any = None, model: Any = None, **_: Any) -> None:
        meta = parsed.get("ResponseMetadata", {}) if isinstance(parsed, dict) else {}
        record_retries(service, model.name, int(meta.get("RetryAttempts") or 0), call_log)

    def after_error(context: Any = None, model: Any = None, **kwargs: Any) -> None:
        attempt = ((context or {}).get("retries") or {}).get("attempt", 1)
        name = model.name if model is not None else kwargs.get("event_name", "").rsplit(".", 1)[-1]
        record_retries(service, name, int(attempt) - 1, call_log)

    client.meta.events.register("after-call", after_call)
    client.meta.events.register("after-call-error", after_error)


def error_code(exc: BaseException) -> str:
    """One line: the API's error code and message, or the exception's class and first line."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}".strip()
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
