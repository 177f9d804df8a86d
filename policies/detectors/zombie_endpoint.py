"""zombie-endpoint: a SageMaker real-time endpoint nobody invoked over the whole lookback window.

Its instances bill every hour it exists, traffic or not: the waste is the hourly price of each
production variant's instance type x its running instance count x 730. CloudWatch publishes no
Invocations datapoint for an hour without traffic, so a missing series counts as zero, but only
for an endpoint that is older than the window and either InService or reporting CPU/GPU metrics
(so it demonstrably ran). Otherwise a missing series is "insufficient data", like every other
detector's missing metric: an endpoint that is updating, failing over or newly created may simply
not have been reachable. An endpoint younger than the window is not judged on zero traffic (it
may not have been wired up yet): insufficient data too.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors._time import parse_time
from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.registry import detectors
from costwarden.state.domain import HOURS_PER_MONTH, Finding, MetricRequest, Observation, Resource

BILLED_STATES = ("InService", "Updating", "SystemUpdating", "RollingBack", "OutOfService", "UpdateRollbackFailed")


class ZombieEndpointParams(DetectorParams):
    lookback_days: int = Field(7, ge=1, le=63, description="Days of hourly Invocations to judge on.")
    max_invocations: float = Field(0, ge=0, description="Fires when the window's total is at most this.")
    min_age_days: float | None = Field(None, ge=0, description="Endpoints younger than this are not judged; "
                                                                "default: the lookback window.")


@detectors.register("zombie-endpoint")
class ZombieEndpoint(Detector):
    resource_types = ("aws.sagemaker-endpoint",)
    permissions = ("cloudwatch:GetMetricData",)  # invocations and utilization per variant
    Params = ZombieEndpointParams
    params: ZombieEndpointParams

    @property
    def lookback_hours(self) -> int:
        return self.params.lookback_days * 24

    def wants(self, resource: Resource) -> bool:
        return resource.state in BILLED_STATES and any(
            v.get("instance_type") and v.get("instance_count", 0) > 0 for v in resource.attrs.get("variants", []))

    def metrics(self) -> list[MetricRequest]:
        # CPU/GPU: an endpoint not InService proves it ran (so a missing Invocations series is zero)
        return [MetricRequest("invocations", "Sum"), MetricRequest("cpu_utilization"),
                MetricRequest("gpu_utilization")]

    def _missing_is_zero(self, obs: Observation) -> bool:
        """Whether an absent Invocations series can be read as no traffic: the endpoint is InService,
        or its instances published CPU or GPU utilization over the window."""
        return obs.resource.state == "InService" or any(
            (s := obs.series.get(m)) is not None and bool(s.points) for m in ("cpu_utilization", "gpu_utilization"))

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        r = obs.resource
        min_age = timedelta(days=p.lookback_days if p.min_age_days is None else p.min_age_days)
        created = parse_time(r.attrs.get("creation_time", ""))
        inv = obs.series.get("invocations")
        missing = inv is None or not inv.points
        total = 0.0 if missing or inv is None else sum(inv.values)
        if total > p.max_invocations:
            return None
        cover = {"invocations": self.coverage(obs, "invocations")}
        if created is None or (created.tzinfo and ctx.now - created < min_age):
            return self.insufficient(obs, ctx, cover, required=1.0, reason=(
                f"created {r.attrs.get('creation_time') or 'at an unknown time'}, less than "
                f"{min_age.total_seconds() / 86400:g} days before: too young to judge on its traffic"))
        if missing and not self._missing_is_zero(obs):
            return self.insufficient(obs, ctx, cover, required=1.0, reason=(
                f"invocations missing while the endpoint is {r.state} with no CPU or GPU metrics: "
                f"no sign it ran, so no datapoint is not read as no traffic"))
        hourly_total = Decimal(0)
        variants, sources, unpriced = [], set(), []
        for v in r.attrs.get("variants", []):
            if not v.get("instance_type") or v.get("instance_count", 0) <= 0:
                continue
            price = ctx.price_of(replace(r, kind=v["instance_type"]))
            if price.hourly_usd is None:
                unpriced.append(v["instance_type"])
            else:
                hourly_total += price.hourly_usd * v["instance_count"]
                sources.add(price.source)
            variants.append({"variant": v["name"], "instance_type": v["instance_type"],
                             "instance_count": v["instance_count"],
                             "hourly_price_usd": float(price.hourly_usd) if price.hourly_usd is not None else None})
        for kind in unpriced:
            ctx.warnings.append(f"no SageMaker price for {kind} in {r.region}: endpoint {r.resource_id} "
                                "is reported as unpriced")
        waste = hourly_total * HOURS_PER_MONTH
        instances = sum(v["instance_count"] for v in variants)
        evidence = {
            "signal": "sagemaker_invocations",
            "invocations_total": total,
            "invocation_datapoints": len(inv.points) if inv is not None else 0,
            "lookback_days": p.lookback_days,
            "endpoint_config_name": r.attrs.get("endpoint_config_name", ""),
            "created": r.attrs.get("creation_time", ""),
            "instance_type": r.kind,
            "instance_count": instances,
            "variants": variants,
            "hourly_price_usd": float(hourly_total) if not unpriced else None,
            "price_source": "; ".join(sorted(sources)) if not unpriced else "unpriced",
            "summary": (f"SageMaker endpoint {r.resource_id} served {total:g} invocations in {day_words(p.lookback_days)} "
                        f"while {instances} instance(s) ({', '.join(sorted({v['instance_type'] for v in variants}))}) "
                        f"billed ${waste:,.2f}/month."),
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste)
