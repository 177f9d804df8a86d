"""unattached-volume: an EBS volume in state `available` (attached to nothing) for at least N days.

It bills per GB-month whether or not anything reads it. IOPS/throughput provisioned above the
free baseline bill on top and are not counted, so the waste is a floor.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors._time import parse_time
from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.registry import detectors
from costwarden.state.domain import HOURS_PER_MONTH, Finding, Observation, Resource


class UnattachedVolumeParams(DetectorParams):
    min_age_days: float = Field(7, ge=0, description="Volumes created more recently are not judged.")
    snapshot_kind: str = Field("ebs-snapshot:standard", description="Price key of the final snapshot kept.")


@detectors.register("unattached-volume")
class UnattachedVolume(Detector):
    resource_types = ("aws.ebs-volume",)
    permissions = ()  # reads only what its collector inventories
    Params = UnattachedVolumeParams
    params: UnattachedVolumeParams

    def wants(self, resource: Resource) -> bool:
        return resource.state == "available" and not resource.attrs.get("attachments")

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        r = obs.resource
        created = parse_time(r.attrs.get("create_time", ""))
        if created is None or (created.tzinfo and ctx.now - created < timedelta(days=self.params.min_age_days)):
            return None
        size = int(r.attrs.get("size_gb", 0))
        price = ctx.price_of(r)
        if price.hourly_usd is None:
            ctx.warnings.append(f"no EBS price for {r.kind} in {r.region}: {r.resource_id} is reported as unpriced")
        per_gb_month = (price.hourly_usd or Decimal(0)) * HOURS_PER_MONTH
        waste = per_gb_month * size
        snap = ctx.price_of(Resource(r.provider, r.account, r.region, "aws.ebs-snapshot", r.resource_id,
                                     kind=self.params.snapshot_kind))
        snap_monthly = (snap.hourly_usd or Decimal(0)) * HOURS_PER_MONTH * size
        evidence = {
            "signal": "ebs_volume_unattached",
            "volume_type": r.kind.split(":", 1)[-1],
            "size_gb": size,
            "created": r.attrs.get("create_time", ""),
            "availability_zone": r.attrs.get("availability_zone", ""),
            "price_per_gb_month_usd": round(float(per_gb_month), 4) if price.hourly_usd is not None else None,
            "price_source": price.source,
            # keeping a final snapshot costs this much at most (snapshots store changed blocks only)
            "snapshot_monthly_usd_upper_bound": round(float(snap_monthly), 2),
            "summary": (f"EBS {r.kind.split(':', 1)[-1]} volume {r.resource_id} ({size} GB) is attached to nothing "
                        f"and bills ${waste:,.2f}/month."),
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste)
