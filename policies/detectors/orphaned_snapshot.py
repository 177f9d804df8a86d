"""orphaned-snapshot: an EBS snapshot older than N days whose source volume no longer exists.

Snapshots that back one of the account's AMIs are never reported (they cannot be deleted while
the AMI is registered). A snapshot bills on the blocks it stores, which AWS does not report per
snapshot, so the waste is computed from the source volume's size: an upper bound, with medium
confidence.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors._time import parse_time
from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.registry import detectors
from costwarden.state.domain import HOURS_PER_MONTH, Finding, Observation, Resource


class OrphanedSnapshotParams(DetectorParams):
    min_age_days: float = Field(30, ge=0, description="Snapshots younger than this are not judged.")


@detectors.register("orphaned-snapshot")
class OrphanedSnapshot(Detector):
    resource_types = ("aws.ebs-snapshot",)
    permissions = ()  # reads only what its collector inventories
    Params = OrphanedSnapshotParams
    params: OrphanedSnapshotParams

    def wants(self, resource: Resource) -> bool:
        return (resource.state == "completed" and not resource.attrs.get("volume_exists", True)
                and not resource.attrs.get("used_by_amis"))

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        r = obs.resource
        started = parse_time(r.attrs.get("start_time", ""))
        if started is None or started.tzinfo is None:
            return None
        age = ctx.now - started
        if age < timedelta(days=self.params.min_age_days):
            return None
        size = int(r.attrs.get("volume_size_gb", 0))
        price = ctx.price_of(r)
        if price.hourly_usd is None:
            ctx.warnings.append(f"no snapshot price for {r.kind} in {r.region}: {r.resource_id} is reported as unpriced")
        per_gb_month = (price.hourly_usd or Decimal(0)) * HOURS_PER_MONTH
        waste = per_gb_month * size
        evidence = {
            "signal": "ebs_snapshot_orphaned",
            "source_volume_id": r.attrs.get("volume_id", ""),
            "source_volume_exists": False,
            "volume_size_gb": size,
            "age_days": age.days,
            "min_age_days": self.params.min_age_days,
            "description": r.attrs.get("description", ""),
            "price_per_gb_month_usd": round(float(per_gb_month), 4) if price.hourly_usd is not None else None,
            "price_source": price.source,
            "waste_is_upper_bound": True,
            "summary": (f"EBS snapshot {r.resource_id} is {day_words(age.days)} old and its volume "
                        f"{r.attrs.get('volume_id') or '(unknown)'} is gone; it bills up to ${waste:,.2f}/month "
                        f"({size} GB source volume)."),
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste, confidence="medium")
