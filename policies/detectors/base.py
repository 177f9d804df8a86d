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
    # per-token price of an LLM model (LiteLLM's price map + config overrides); None = unpriced
    token_price: Callable[[str], TokenPrice | None] = lambda _model: None


class Detector:
    name: ClassVar[str]
    resource_types: ClassVar[tuple[str, ...]] = ()
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
