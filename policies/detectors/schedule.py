"""schedule: enforce the off-hours window tagged on a resource (Cloud Custodian's offhour/onhour).

A resource tagged `costwarden:schedule=23:00-06:00 Europe/Berlin` (see the `schedule` action) is:
- running inside its window -> a finding with op `stop`, unless Costwarden already stopped it in
  this occurrence of the window (its stop mark is newer than the occurrence's start): then a
  person started it again on purpose, and that is respected until the next occurrence;
- stopped outside its window, carrying Costwarden's stop mark -> a finding with op `start`,
  unless the provider says it was stopped after the mark was written (a person stopped it
  again): what a person stopped is never started.
The `enforce-schedule` action turns the op into a stop (which writes the mark) or a start (which
removes it). Pure: the decision reads only the resource's tags, state and `stopped_at`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field

from costwarden.policies.actions.marks import (MarkError, decode_schedule, in_off_window, occurrence_start, off_fraction,
                                    parse_stamp, schedule_monthly_savings, tag_key)
from costwarden.policies.detectors._time import parse_time
from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.registry import detectors
from costwarden.policies.resources import provider_of
from costwarden.state.domain import Finding, Observation, Resource

STOPPED = ("stopped", "terminated")  # EC2 / GCE names for a stopped instance
CLOCK_SKEW = timedelta(minutes=2)  # the provider's stop time vs our mark, written after the stop was verified


class ScheduleParams(DetectorParams):
    tag: str = Field("costwarden:schedule", min_length=1, max_length=60, description="The tag holding the window.")
    stopped_tag: str = Field("costwarden:stopped-by-schedule", min_length=1, max_length=60,
                             description="The mark a scheduled stop leaves; only marked instances are started.")
    ops: list[Literal["stop", "start"]] = Field(default_factory=lambda: ["stop", "start"], min_length=1,
                                              description="Which ops to find: stops inside windows, starts after them.")


def stopped_by_us(mark: datetime | None, stopped_at: datetime | None) -> bool:
    """Did the last stop come from the enforcer? Yes if it left a mark and no later stop is on record."""
    if mark is None:
        return False
    return stopped_at is None or stopped_at <= mark + CLOCK_SKEW


@detectors.register("schedule")
class Schedule(Detector):
    resource_types = ("aws.ec2", "gcp.compute")
    permissions = ()  # reads only what its collector inventories
    Params = ScheduleParams
    params: ScheduleParams

    def _keys(self, r: Resource) -> tuple[str, str]:
        provider = provider_of(r.resource_type)
        return tag_key(self.params.tag, provider), tag_key(self.params.stopped_tag, provider)

    def wants(self, resource: Resource) -> bool:
        return self._keys(resource)[0] in resource.tags and (resource.state == "running" or resource.state in STOPPED)

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        r = obs.resource
        key, mark_key = self._keys(r)
        try:
            window = decode_schedule(r.tags[key])
        except MarkError as exc:
            ctx.warnings.append(f"{r.resource_id}: tag {key} {exc}; schedule not enforced")
            return None
        mark = parse_stamp(r.tags.get(mark_key, ""))
        inside = in_off_window(window, ctx.now)
        if r.state == "running" and inside and "stop" in self.params.ops:
            began = occurrence_start(window, ctx.now)
            if mark is not None and began is not None and mark >= began:
                return None  # stopped once this occurrence; a person started it again since
            op = "stop"
        elif r.state in STOPPED and not inside and "start" in self.params.ops:
            if not stopped_by_us(mark, parse_time(str(r.attrs.get("stopped_at") or ""))):
                return None
            op = "start"
        else:
            return None
        hourly = None
        waste = Decimal(0)
        if op == "stop":
            price = ctx.price_of(r)
            hourly = price.hourly_usd
            if hourly is None:
                ctx.warnings.append(f"no on-demand price for {r.kind} in {r.region}: {r.resource_id} is reported "
                                    "as unpriced")
            waste = schedule_monthly_savings(hourly or Decimal(0), window)
        days = ",".join(window.days)
        where = f"{window.start:%H:%M}-{window.end:%H:%M} {window.timezone} ({days})"
        evidence = {
            "signal": "schedule", "op": op, "schedule": r.tags[key], "tag": key, "mark_tag": mark_key,
            "window_start": f"{window.start:%H:%M}", "window_end": f"{window.end:%H:%M}",
            "timezone": window.timezone, "days": list(window.days),
            "off_share_of_week": round(float(off_fraction(window)), 4),
            "instance_type": r.kind, "hourly_price_usd": float(hourly) if hourly is not None else None,
            "stopped_by_costwarden_at": mark.isoformat() if mark else None,
            "summary": (f"{r.resource_id} is running inside its off window {where}; stopping it for the window "
                        f"saves ${waste:,.2f}/month." if op == "stop" else
                        f"{r.resource_id} was stopped by its schedule {where}, which is over; start it again."),
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste)
