"""unassociated-eip: an Elastic IP address associated with nothing. Every public IPv4 address
bills hourly; one that serves nothing is pure waste."""

from __future__ import annotations

from decimal import Decimal

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.registry import detectors
from costwarden.state.domain import HOURS_PER_MONTH, Finding, Observation, Resource


@detectors.register("unassociated-eip")
class UnassociatedEip(Detector):
    resource_types = ("aws.elastic-ip",)
    permissions = ()  # reads only what its collector inventories
    Params = DetectorParams

    def wants(self, resource: Resource) -> bool:
        return resource.state == "unassociated"

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        r = obs.resource
        price = ctx.price_of(r)
        if price.hourly_usd is None:
            ctx.warnings.append(f"no price for an Elastic IP in {r.region}: {r.resource_id} is reported as unpriced")
        waste = (price.hourly_usd or Decimal(0)) * HOURS_PER_MONTH
        evidence = {
            "signal": "elastic_ip_unassociated",
            "public_ip": r.attrs.get("public_ip", ""),
            "hourly_price_usd": float(price.hourly_usd) if price.hourly_usd is not None else None,
            "price_source": price.source,
            "summary": f"Elastic IP {r.attrs.get('public_ip', r.resource_id)} is associated with nothing and bills "
                       f"${waste:,.2f}/month.",
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste)
