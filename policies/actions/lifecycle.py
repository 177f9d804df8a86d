"""start, and enforce-schedule: the instance lifecycle actions beyond the built-in stop."""

from __future__ import annotations

from decimal import Decimal

from costwarden.policies.actions.base import Action, PlanContext, ToolCall
from costwarden.policies.actions.evidence import PlanError
from costwarden.policies.registry import actions
from costwarden.state.domain import Finding

INSTANCES = ("aws.ec2", "gcp.compute")


def _where(finding: Finding) -> dict[str, str]:
    return {"account": finding.account, "region": finding.region, "instance_id": finding.resource_id}


@actions.register("start")
class Start(Action):
    """Start a stopped instance. Starting costs money rather than saving it, so the projected saving
    is $0. A `marked-for-op` finding names its mark (`unmark_tag`): it is removed once started."""

    resource_types = INSTANCES
    permissions = ("ec2:DescribeInstances", "ec2:StartInstances", "ec2:DeleteTags",
                   "compute.instances.get", "compute.instances.start", "compute.instances.setLabels",
                   "compute.zoneOperations.get")

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        args: dict[str, object] = _where(finding)
        if finding.evidence.get("unmark_tag"):
            args["unmark_tag"] = finding.evidence["unmark_tag"]
        return ToolCall(tool=f"{finding.resource_type}.start_instance", args=args,
                        projected_monthly_savings_usd=Decimal("0.00"))


@actions.register("enforce-schedule")
class EnforceSchedule(Action):
    """Carry out what the `schedule` detector found due: stop a running instance inside its off window,
    leaving a stop mark; or start one Costwarden stopped, once the window is over, removing the mark.
    Only instances carrying the mark are ever started, so an instance a person stopped stays stopped."""

    resource_types = INSTANCES
    permissions = ("ec2:DescribeInstances", "ec2:StopInstances", "ec2:StartInstances", "ec2:CreateTags",
                   "ec2:DeleteTags", "compute.instances.get", "compute.instances.stop", "compute.instances.start",
                   "compute.instances.setLabels", "compute.zoneOperations.get")  # the stop mark, set and removed

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        op, mark = finding.evidence.get("op"), finding.evidence.get("mark_tag")
        if op not in ("stop", "start") or not mark:
            raise PlanError(f"policy {finding.policy!r}, action 'enforce-schedule': finding {finding.id} "
                            f"({finding.detector}) is not a schedule finding (its evidence needs 'op' and 'mark_tag'); "
                            "use it with the 'schedule' filter")
        if op == "stop":
            return ToolCall(tool=f"{finding.resource_type}.stop_instance", args={**_where(finding), "mark_tag": mark},
                            projected_monthly_savings_usd=finding.monthly_waste_usd)
        return ToolCall(tool=f"{finding.resource_type}.start_instance", args={**_where(finding), "unmark_tag": mark},
                        projected_monthly_savings_usd=Decimal("0.00"))
