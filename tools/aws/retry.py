"""Tenacity retries for AWS throttling and transient server errors; everything else fails fast."""

from __future__ import annotations

from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
import threading
from collections import Counter

from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential_jitter

THROTTLING = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
              "RequestThrottled", "SlowDown", "ProvisionedThroughputExceededException"}
TRANSIENT = {"InternalError", "InternalFailure", "ServiceUnavailable", "InternalServerError"}


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in THROTTLING | TRANSIENT
    return isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError))


_lock = threading.Lock()
RETRIES: Counter[str] = Counter()  # by function name; read by the daemon's /metrics


def _count_retry(state: RetryCallState) -> None:
    with _lock:
        RETRIES[getattr(state.fn, "__name__", "aws")] += 1


def retry_counts() -> dict[str, int]:
    with _lock:
        return dict(RETRIES)


aws_retry = retry(
    retry=retry_if_exception(is_retryable),
    before_sleep=_count_retry,
    wait=wait_exponential_jitter(multiplier=0.5, max=20),
    stop=stop_after_attempt(6),
    reraise=True,
)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {err.get('Message', '')}".strip()
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
