"""schedule: tag a resource with an off-hours window, which the `schedule` filter then enforces.

The window is fixed in the policy or taken from the finding (the off-hours detector proposes
`window_start`, `window_end`, `timezone`, `days`, the defaults below). It is written as
`costwarden:schedule=23:00-06:00 Europe/Berlin` (a label-safe form on GCP, see marks.py), so a
person can read, change or delete it in the console. The projected saving is the run-rate over
the off share of the week (marks.schedule_monthly_savings).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field, ValidationError

from costwarden.policies.actions.base import Action, ActionParams, PlanContext, PriceOf, ToolCall
from costwarden.policies.actions.evidence import FromEvidence, PlanError, resolve
from costwarden.policies.actions.mark import tag_call
from costwarden.policies.actions.marks import MarkError, encode_schedule, normalize_days, schedule_monthly_savings, tag_key
from costwarden.policies.registry import actions
from costwarden.policies.resources import provider_of
from costwarden.policies.schema import WEEKDAYS, ChangeWindow
from costwarden.state.domain import Finding, money


class ScheduleParams(ActionParams):
    start: str | int | FromEvidence = Field(FromEvidence(from_evidence="window_start"),
                                            description="When the machine stops, HH:MM local.")
    end: str | int | FromEvidence = Field(FromEvidence(from_evidence="window_end"),
                                          description="When it starts again, HH:MM local.")
    timezone: str | FromEvidence = Field(FromEvidence(from_evidence="timezone", default="UTC"),
                                         description="IANA time zone of start and end.")
    days: list[str] | str | FromEvidence = Field(FromEvidence(from_evidence="days", default=list(WEEKDAYS)),
                                                 description="Days the window opens on (mon..sun).")
    tag: str = Field("costwarden:schedule", min_length=1, max_length=60, description="The tag holding the window.")


def hourly_of(finding: Finding, price_of: PriceOf) -> Decimal | None:
    """The resource's run-rate: the detector's own price, else the sweep's price of its type."""
    if finding.evidence.get("hourly_price_usd") is not None:
        return Decimal(str(finding.evidence["hourly_price_usd"]))
    kind = finding.evidence.get("instance_type") or finding.evidence.get("machine_type")
    if kind:
        return price_of(provider_of(finding.resource_type), finding.region, str(kind))[0]
    return None


@actions.register("schedule")
class Schedule(Action):
    resource_types = ("aws.ec2", "gcp.compute")
    permissions = ("ec2:DescribeInstances", "ec2:CreateTags", "ec2:DeleteTags",
                   "compute.instances.get", "compute.instances.setLabels", "compute.zoneOperations.get")
    Params = ScheduleParams
    params: ScheduleParams

    def window(self, finding: Finding) -> ChangeWindow:
        p = self.params
        values: dict[str, Any] = {name: resolve(getattr(p, name), finding, action="schedule", field=name)
                                  for name in ("start", "end", "timezone", "days")}
        try:
            values["days"] = normalize_days(values["days"])
            return ChangeWindow(**values)
        except MarkError as exc:
            raise PlanError(f"policy {finding.policy!r}, action 'schedule', field 'days': {exc}") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            raise PlanError(f"policy {finding.policy!r}, action 'schedule', field '{err['loc'][0]}': "
                            f"{err['msg']} (finding {finding.id})") from None

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        provider = provider_of(finding.resource_type)
        window = self.window(finding)
        try:
            value = encode_schedule(window, provider)
            key = tag_key(self.params.tag, provider)
        except MarkError as exc:
            raise PlanError(f"policy {finding.policy!r}, action 'schedule': {exc}") from None
        hourly = hourly_of(finding, ctx.price_of)
        # no price known: the finding's own waste figure (an off-hours finding prices just the off hours)
        saving = schedule_monthly_savings(hourly, window) if hourly is not None else finding.monthly_waste_usd
        tool, args = tag_call(finding, {key: value})
        return ToolCall(tool=tool, args=args, projected_monthly_savings_usd=money(saving))
