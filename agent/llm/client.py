"""The one place Costwarden calls a language model: litellm.completion behind a budget.

Why a wrapper and not litellm directly:
- `import litellm` costs seconds, so it happens here, inside the first call, never at import
  time: a daemon with no model configured never pays for it.
- The agent watches other people's LLM spend; its own must be capped and visible. Every
  attempt is recorded in `llm_calls` (model, purpose, tokens, cost, latency, ok/error), costs come
  from our price map (tokens x PriceMap prices, the same figures the detectors use), and a per-run
  and per-month USD budget stop further calls before they are made.
- Output is structured: the model is asked for JSON, parsed with pydantic; an invalid answer
  gets one retry that quotes the validation error, then the caller's deterministic fallback.
- Failures are never fatal: rate limits, timeouts and connection errors are retried with
  tenacity; anything else, or a budget breach, makes `structured` return None.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select

from costwarden.agent.config import LlmSettings
from costwarden.agent.llm.redact import redact_secrets
from costwarden.state.models import LlmCallRow
from costwarden.state.store import Store
from costwarden.tools.llm_prices import PriceMap

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
MockResponse = str | dict[str, Any] | Exception
CHARS_PER_TOKEN_ESTIMATE = 3  # conservative (English averages ~4): the estimate guards a budget
MAX_CONSECUTIVE_FAILURES = 2  # then the model is considered down for the rest of the run


class LlmStopped(Exception):
    """No further calls this run: a budget is spent, the call cap is reached, or the model is down."""


class LlmCallFailed(Exception):
    """One logical call failed after its retries; the caller falls back to deterministic text."""


def import_litellm() -> Any:
    """Import litellm configured for offline, quiet use (no price-map fetch, no telemetry)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def month_start(now: datetime) -> datetime:
    now = now.astimezone(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def llm_spend(store: Store, *, since: datetime | None = None, run_id: str | None = None) -> Decimal:
    """The agent's own recorded LLM spend, from llm_calls (the store every replica shares)."""
    q = select(func.coalesce(func.sum(LlmCallRow.cost_usd), 0))
    if since is not None:
        q = q.where(LlmCallRow.created_at >= since)
    if run_id is not None:
        q = q.where(LlmCallRow.run_id == run_id)
    with store.session() as s:
        return Decimal(str(s.execute(q).scalar() or 0))


@dataclass
class Completion:
    """One answered call, before its output is judged valid or not."""

    text: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: Decimal
    latency_ms: int


def _json_block(text: str) -> str:
    """The JSON object in an answer: models wrap it in ``` fences or prose despite instructions."""
    t = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", t, re.S)
    if fence:
        t = fence.group(1).strip()
    if not t.startswith("{"):
        start, end = t.find("{"), t.rfind("}")
        if start != -1 and end > start:
            t = t[start:end + 1]
    return t


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:5]]
        return "; ".join(parts)
    return str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__


class LlmClient:
    """A per-run client: settings, the store to record in, and the run's own spend so far."""

    def __init__(self, settings: LlmSettings, store: Store, *, run_id: str | None, prices: PriceMap,
                 now: datetime | None = None, mock_responses: Sequence[MockResponse] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.store = store
        self.run_id = run_id
        self.prices = prices
        self.now = now or datetime.now(timezone.utc)
        # litellm's mock_response, one per completion attempt (the last one repeats): tests and demos
        if mock_responses is None and settings.mock_response is not None:
            mock_responses = [settings.mock_response]
        self._mocks = list(mock_responses) if mock_responses else []
        self._sleep = sleep
        self.calls = 0
        self.spent = Decimal(0)
        self.stopped: str | None = None
        self._failures = 0
        self.warnings: list[str] = []
        self._warned: set[str] = set()

    @property
    def model(self) -> str:
        return self.settings.model or ""

    @property
    def available(self) -> bool:
        return bool(self.settings.model) and self.stopped is None

    def warn(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            self.warnings.append(msg)
            log.warning(msg)

    # --- structured output ------------------------------------------------------------------------
    def structured(self, purpose: str, *, system: str, user: str, schema: type[T],
                   check: Callable[[T], None] | None = None) -> T | None:
        """Ask for a JSON object matching `schema`; None means: use the deterministic fallback.

        `check` adds rules pydantic cannot express (e.g. numbers must come from the evidence);
        it raises ValueError, which is treated like a validation error: one retry, then None.
        """
        if not self.available:
            return None
        shape = json.dumps(schema.model_json_schema(), separators=(",", ":"))
        messages: list[dict[str, str]] = [
            {"role": "system", "content": f"{system}\nAnswer with one JSON object only, matching this JSON schema: "
                                          f"{shape}"},
            {"role": "user", "content": user}]
        for attempt in (1, 2):
            try:
                out = self._complete(purpose, messages)
            except (LlmStopped, LlmCallFailed):
                return None
            try:
                obj = schema.model_validate_json(_json_block(out.text))
                if check is not None:
                    check(obj)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                err = _short_error(exc)
                self._record(purpose, out, ok=False, error=f"invalid output: {err}")
                if attempt == 1:
                    messages = messages + [
                        {"role": "assistant", "content": out.text},
                        {"role": "user", "content": f"That answer was rejected: {err}. Reply again with only the "
                                                    "corrected JSON object."}]
                    continue
                self.warn(f"llm {purpose}: output rejected twice ({err}); deterministic text used")
                return None
            self._record(purpose, out, ok=True)
            return obj
        return None

    # --- one logical call, with retries and the budget ------------------------------------------
    def _complete(self, purpose: str, messages: list[dict[str, str]]) -> Completion:
        if self.stopped is not None:
            raise LlmStopped(self.stopped)
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential  # not at start-up

        litellm = import_litellm()
        retryable = (litellm.RateLimitError, litellm.Timeout, litellm.APIConnectionError,
                     litellm.InternalServerError, litellm.ServiceUnavailableError)
        s = self.settings
        retrying = Retrying(retry=retry_if_exception_type(retryable), stop=stop_after_attempt(s.max_retries + 1),
                            wait=wait_exponential(multiplier=s.retry_wait_seconds, max=30), sleep=self._sleep,
                            reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    self._check_budget(purpose, messages)
                    out = self._call_once(litellm, purpose, messages)
            self._failures = 0
            return out
        except LlmStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - any model failure means: fall back
            self._failures += 1
            self.warn(f"llm {purpose}: {exc.__class__.__name__}: {redact_secrets(_short_error(exc))}; "
                      "deterministic text used")
            if self._failures >= MAX_CONSECUTIVE_FAILURES:
                self._stop(f"{self._failures} consecutive failed calls to {self.model}", decision="model_unavailable")
            raise LlmCallFailed(str(exc)) from exc

    def _call_once(self, litellm: Any, purpose: str, messages: list[dict[str, str]]) -> Completion:
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": s.model, "messages": messages, "timeout": s.timeout_seconds, "max_tokens": s.max_output_tokens,
            "temperature": 0, "response_format": {"type": "json_object"}, "drop_params": True,
            "max_retries": 0,  # tenacity retries; the provider SDK's own retries would hide them from the record
        }
        if s.api_base:
            kwargs["api_base"] = s.api_base
        if s.api_key is not None:
            kwargs["api_key"] = s.api_key.get_secret_value()
        if self._mocks:
            kwargs["mock_response"] = self._mocks.pop(0) if len(self._mocks) > 1 else self._mocks[0]
        self.calls += 1
        t0 = time.monotonic()
        try:
            resp = litellm.completion(**kwargs)
        except Exception as exc:
            latency = int((time.monotonic() - t0) * 1000)
            self.store.record_llm_call(run_id=self.run_id, purpose=purpose, model=self.model, input_tokens=0,
                                       output_tokens=0, cost_usd=Decimal(0), latency_ms=latency, ok=False,
                                       error=redact_secrets(f"{exc.__class__.__name__}: {_short_error(exc)}"))
            raise
        latency = int((time.monotonic() - t0) * 1000)
        usage = getattr(resp, "usage", None)
        tin = int(getattr(usage, "prompt_tokens", 0) or 0)
        tout = int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        text = resp.choices[0].message.content or ""
        cost = self._cost(tin, tout, cached)
        self.spent += cost
        return Completion(text=text, input_tokens=tin, output_tokens=tout, cache_read_tokens=cached, cost_usd=cost,
                          latency_ms=latency)

    def _cost(self, tin: int, tout: int, cached: int = 0) -> Decimal:
        price = self.prices.price(self.model)
        if price is None:
            self.warn(f"llm: model {self.model!r} has no price in LiteLLM's price map or billing.price_overrides: "
                      "its calls are recorded unpriced ($0) and only llm.max_calls_per_run caps them")
            return Decimal(0)
        return price.cost(tin, tout, cached)

    def _record(self, purpose: str, out: Completion, *, ok: bool, error: str | None = None) -> None:
        self.store.record_llm_call(run_id=self.run_id, purpose=purpose, model=self.model,
                                   input_tokens=out.input_tokens, output_tokens=out.output_tokens,
                                   cost_usd=out.cost_usd, latency_ms=out.latency_ms, ok=ok,
                                   error=error[:1000] if error else None)

    # --- the budget -------------------------------------------------------------------------------
    def estimate(self, messages: list[dict[str, str]]) -> Decimal:
        """Upper-bound cost of the next call: its prompt (by characters) and a full-length answer."""
        chars = sum(len(m["content"]) for m in messages)
        price = self.prices.price(self.model)
        if price is None:
            return Decimal(0)
        return price.cost(math.ceil(chars / CHARS_PER_TOKEN_ESTIMATE), self.settings.max_output_tokens)

    def _check_budget(self, purpose: str, messages: list[dict[str, str]]) -> None:
        s = self.settings
        if self.calls >= s.max_calls_per_run:
            self._stop(f"llm.max_calls_per_run={s.max_calls_per_run} reached", purpose=purpose)
        est = self.estimate(messages)
        if s.budget_per_run_usd is not None:
            cap = Decimal(str(s.budget_per_run_usd))
            if self.spent + est > cap:
                self._stop(f"per-run LLM budget ${cap} reached (spent ${self.spent:.6f}, next call up to "
                           f"${est:.6f})", purpose=purpose)
        if s.budget_per_month_usd is not None:
            cap = Decimal(str(s.budget_per_month_usd))
            month = llm_spend(self.store, since=month_start(self.now))
            if month + est > cap:
                self._stop(f"monthly LLM budget ${cap} reached (spent ${month:.6f} since "
                           f"{month_start(self.now):%Y-%m-%d}, next call up to ${est:.6f})", purpose=purpose)

    def _stop(self, reason: str, *, purpose: str | None = None, decision: str = "budget_exceeded") -> None:
        """Stop calling the model for this run; record why (a decision row and a run warning)."""
        self.stopped = reason
        self.store.append_decision(stage="llm", decision=decision, run_id=self.run_id,
                                   reason=f"{reason}; no further LLM calls this run, deterministic text used",
                                   detail={"model": self.model, "purpose": purpose, "calls": self.calls,
                                           "spent_usd": str(self.spent)})
        self.warn(f"llm: {reason}; the rest of the run uses deterministic text")
        raise LlmStopped(reason)
