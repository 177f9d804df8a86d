"""Built-in actions."""

from __future__ import annotations

from costwarden.policies.actions.base import Action, PlanContext, ToolCall
from costwarden.policies.registry import actions
from costwarden.state.domain import Finding


@actions.register("stop")
class Stop(Action):
    """Stop an instance. The saving is its compute run-rate; attached storage keeps billing."""

    resource_types = ("aws.ec2", "gcp.compute")
    permissions = ("ec2:DescribeInstances", "ec2:StopInstances", "ec2:DeleteTags",
                   "compute.instances.get", "compute.instances.stop", "compute.instances.setLabels",
                   "compute.zoneOperations.get")  # DeleteTags/setLabels: a due mark-for-op mark is removed

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        args = {"account": finding.account, "region": finding.region, "instance_id": finding.resource_id}
        if finding.evidence.get("unmark_tag"):  # a due mark-for-op mark: removed once stopped
            args["unmark_tag"] = finding.evidence["unmark_tag"]
        return ToolCall(
            tool=f"{finding.resource_type}.stop_instance",
            args=args,
            projected_monthly_savings_usd=finding.monthly_waste_usd,
        )
