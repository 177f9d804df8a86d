"""What every detector is: a registered class with a params schema and a pure `detect`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from costwarden.state.domain import Finding, MetricRequest, Observation, Resource, money, short_hash
from costwarden.state.usage import TokenPrice


class DetectorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Price:
    hourly_usd: Decimal | None
    source: str


@dataclass
class DetectContext:
    policy: str
    run_id: str
    now: datetime
    price_of: Callable[[Resource], Price]
    warnings: list[str] = field(default_factory=list)
    # resources a detector could not judge for want of data (see Detector.insufficient)
    insufficient: list[dict[str, Any]] = field(default_factory=list)
    # per-token price of an LLM model (LiteLLM's price map + config overrides); None = unpriced
    token_price: Callable[[str], TokenPrice | None] = lambda _model: None


class Detector:
    name: ClassVar[str]
    resource_types: ClassVar[tuple[str, ...]] = ()
    # The cloud permissions it uses, AWS `service:Action` and GCP `service.resource.verb` (policies/permissions.py);
    # no default: a class that declares none fails the registry test and `policies permissions`.
    permissions: ClassVar[tuple[str, ...]]
    Params: ClassVar[type[DetectorParams]] = DetectorParams

    def __init__(self, params: DetectorParams) -> None:
        self.params = params

    @property
    def lookback_hours(self) -> int:
        return 0

    def wants(self, resource: Resource) -> bool:
        """Cheap pre-filter on inventory, so metrics are fetched only for candidates."""
        return True

    def metrics(self) -> list[MetricRequest]:
        return []

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def coverage(self, obs: Observation, metric: str) -> float:
        """Share of the lookback window's hourly slots that hold a datapoint of `metric` (0 when absent).

        Why a share and not a count: "no series" and "a series of zeros" must never look alike,
        and a detector's threshold (`min_coverage`) is stated as a share of the window.
        """
        s = obs.series.get(metric)
        if s is None or not s.points or self.lookback_hours <= 0:
            return 0.0
        return min(1.0, len(s.points) / self.lookback_hours)

    def insufficient(self, obs: Observation, ctx: DetectContext, coverage: dict[str, float], *,
                     required: float, reason: str = "") -> None:
        """Record that `obs.resource` could not be judged: the metrics it needs fell below `required`.

        Returns None so a detector can `return self.insufficient(...)`. The record carries no money:
        it is not waste, and the totals never count it; it exists so a resource without data is
        reported as such instead of looking idle (read as zero) or vanishing (silently dropped).
        """
        r = obs.resource
        short = {m: round(c, 3) for m, c in coverage.items() if c < required}
        ctx.insufficient.append({
            "policy": ctx.policy, "detector": self.name, "provider": r.provider, "account": r.account,
            "region": r.region, "resource_id": r.resource_id, "resource_type": r.resource_type,
            "name": r.tags.get("Name", ""),
            "metric": ", ".join(short) or ", ".join(coverage),
            "coverage": min(short.values()) if short else min(coverage.values(), default=0.0),
            "required_coverage": required,
            "coverage_by_metric": {m: round(c, 3) for m, c in coverage.items()},
            "lookback_hours": self.lookback_hours,
            "reason": reason or describe_gap(short or coverage, required),
        })
        return None

    def finding(self, obs: Observation, ctx: DetectContext, *, evidence: dict[str, Any],
                monthly_waste: Decimal, confidence: str = "high") -> Finding:
        r = obs.resource
        return Finding(
            id="fnd_" + short_hash(ctx.run_id, ctx.policy, self.name, r.key),
            policy=ctx.policy, detector=self.name, provider=r.provider, account=r.account, region=r.region,
            resource_id=r.resource_id, resource_type=r.resource_type, evidence=evidence,
            monthly_waste_usd=money(monthly_waste), severity=severity_for(monthly_waste),
            confidence=confidence, tags=dict(r.tags),
        )


def describe_gap(coverage: dict[str, float], required: float) -> str:
    """One line a reader acts on: which metric is missing or thin, against what threshold."""
    parts = [f"{m} {'missing' if c == 0 else f'at {c:.0%} coverage'}" for m, c in coverage.items()]
    return f"{', '.join(parts)} (needs {required:.0%} of the lookback hours)"


def severity_for(monthly_waste: Decimal | float) -> str:
    w = float(monthly_waste)
    if w >= 10_000:
        return "critical"
    if w >= 1_000:
        return "high"
    if w >= 100:
        return "medium"
    return "low"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; robust to a few spikes, which a max would not be."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]


class PlainFilter(Detector):
    """A filter that only narrows the set (value, and/or/not): it flags nothing and costs nothing.

    Why a Detector subclass: one registry holds every name a policy's `filters` may use, so the
    vocabulary, its parameter schemas and the generated reference stay one list. The evaluator
    (policies/evaluate.py) calls `matches`; `detect` is never called on a plain filter.
    """

    plain: ClassVar[bool] = True

    def matches(self, resource: Resource, now: datetime) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        raise TypeError(f"{self.name} is a plain filter: it narrows the set and produces no finding")
