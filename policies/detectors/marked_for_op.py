"""marked-for-op: resources whose `mark-for-op` mark has come due (Cloud Custodian's marked-for-op).

A mark `costwarden:op=stop@2026-11-30` (GCP: `costwarden-op=stop_2026-11-30`) is due from that
date on (UTC). The finding names the mark in `unmark_tag`, so the op's action removes it once done
and an overdue mark cannot fire again after someone restarts the instance. Only a resource the op
can change is a candidate: a running one for `stop`, a stopped one for `start`.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from costwarden.policies.actions.marks import MarkError, decode_op, tag_key
from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.registry import detectors
from costwarden.policies.resources import provider_of
from costwarden.state.domain import HOURS_PER_MONTH, Finding, Observation, Resource

STOPPED = ("stopped", "terminated")  # EC2 / GCE names for a stopped instance


class MarkedForOpParams(DetectorParams):
    op: str = Field(pattern=r"^[a-z][a-z-]*$", description="Only marks for this op, e.g. stop.")
    tag: str = Field("costwarden:op", min_length=1, max_length=60, description="The tag holding marks.")
    skew_days: int = Field(0, ge=0, le=365, description="Act this many days after the due date.")


@detectors.register("marked-for-op")
class MarkedForOp(Detector):
    resource_types = ("aws.ec2", "gcp.compute")
    permissions = ()  # reads only what its collector inventories
    Params = MarkedForOpParams
    params: MarkedForOpParams

    def _key(self, r: Resource) -> str:
        return tag_key(self.params.tag, provider_of(r.resource_type))

    def wants(self, resource: Resource) -> bool:
        if self._key(resource) not in resource.tags:
            return False
        if self.params.op == "stop":
            return resource.state == "running"
        if self.params.op == "start":
            return resource.state in STOPPED
        return True

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        r = obs.resource
        key = self._key(r)
        value = r.tags.get(key, "")
        try:
            op, due = decode_op(value)
        except MarkError as exc:
            ctx.warnings.append(f"{r.resource_id}: tag {key} {exc}; ignored")
            return None
        if op != self.params.op or (ctx.now.date() - due).days < self.params.skew_days:
            return None
        waste = Decimal(0)
        hourly = None
        if op == "stop":  # what the running resource bills while it waits; other ops are not waste
            price = ctx.price_of(r)
            hourly = price.hourly_usd
            if hourly is None:
                ctx.warnings.append(f"no on-demand price for {r.kind} in {r.region}: {r.resource_id} is reported "
                                    "as unpriced")
            waste = (hourly or Decimal(0)) * HOURS_PER_MONTH
        evidence = {
            "signal": "marked_for_op", "op": op, "due": due.isoformat(), "tag": key, "mark": value,
            "unmark_tag": key, "instance_type": r.kind,
            "hourly_price_usd": float(hourly) if hourly is not None else None,
            "summary": f"{r.resource_id} was marked for {op} on {due.isoformat()} ({key}={value}); "
                       f"the date has come.",
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste)
