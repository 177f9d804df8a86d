"""Provider-neutral records passed between collectors, detectors, the guard and the store.

Plain dataclasses: detectors see these, never SDK objects, so one detector serves AWS,
GCP and Prometheus-scraped fleets alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any

from costwarden.state.lifecycle import ActionStatus

CENT = Decimal("0.01")
HOURS_PER_MONTH = Decimal("730")  # the convention AWS and GCP price calculators use
DAYS_PER_MONTH = HOURS_PER_MONTH / Decimal(24)  # the same month in days, for daily spend and token volumes


def money(value: float | Decimal | str | int) -> Decimal:
    """Round to cents, half up, so totals equal the sum of the lines they print."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def short_hash(*parts: Any, length: int = 12) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


@dataclass(frozen=True)
class Resource:
    """One billable thing in a cloud: an instance, an endpoint, a volume."""

    provider: str  # aws | gcp | prometheus
    account: str
    region: str
    resource_type: str  # e.g. aws.ec2
    resource_id: str
    kind: str = ""  # instance type / machine type / SKU
    state: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.account}:{self.region}:{self.resource_id}"


@dataclass(frozen=True)
class MetricRequest:
    """A logical metric a detector needs; each provider maps it to its own API."""

    name: str  # gpu_utilization | cpu_utilization | network_in | network_out
    stat: str = "Average"
    period_seconds: int = 3600


@dataclass
class Series:
    """Datapoints of one metric of one resource, oldest first."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)  # (epoch seconds, value)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points]


@dataclass
class Observation:
    """A resource plus the series collected for it."""

    resource: Resource
    series: dict[str, Series] = field(default_factory=dict)


@dataclass
class Finding:
    id: str
    policy: str
    detector: str
    provider: str
    account: str
    region: str
    resource_id: str
    resource_type: str
    evidence: dict[str, Any]
    monthly_waste_usd: Decimal
    severity: str
    confidence: str = "high"
    rationale: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Stable across runs: the same waste on the same resource found by the same policy."""
        return short_hash(self.policy, self.detector, self.provider, self.account, self.resource_id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["monthly_waste_usd"] = str(self.monthly_waste_usd)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        d = dict(d)
        d["monthly_waste_usd"] = Decimal(str(d["monthly_waste_usd"]))
        return cls(**d)


class Decision(StrEnum):
    """What the guard decides for an action, in order of how much it lets happen."""

    SKIP = "skip"
    REPORT = "report"
    NEEDS_APPROVAL = "needs_approval"
    AUTO = "auto"


SKIP, REPORT, NEEDS_APPROVAL, AUTO = Decision.SKIP, Decision.REPORT, Decision.NEEDS_APPROVAL, Decision.AUTO
DECISIONS = tuple(Decision)


@dataclass
class PlannedAction:
    id: str
    finding_id: str
    policy: str
    action: str  # the policy vocabulary name, e.g. "stop"
    tool: str  # the guarded tool, e.g. "aws.ec2.stop_instance"
    args: dict[str, Any]
    projected_monthly_savings_usd: Decimal
    resource_key: str
    decision: str = REPORT
    reason: str = ""
    status: str = ActionStatus.PLANNED
    destructive: bool = False
    approval_reason: str = ""  # set by the action: the guard asks a person even in auto mode (policies/guard.py)
    report_reason: str = ""  # set at plan time: the action cannot be carried out as things are; only reported

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["projected_monthly_savings_usd"] = str(self.projected_monthly_savings_usd)
        d["decision"], d["status"] = str(self.decision), str(self.status)  # plain strings in graph state and JSON
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannedAction:
        d = dict(d)
        d["projected_monthly_savings_usd"] = Decimal(str(d["projected_monthly_savings_usd"]))
        return cls(**d)
