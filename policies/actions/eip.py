"""Elastic IP actions."""

from __future__ import annotations

from costwarden.policies.actions.base import Action, PlanContext, ToolCall
from costwarden.policies.registry import actions
from costwarden.state.domain import Finding


@actions.register("release-address")
class ReleaseAddress(Action):
    """Release an unassociated Elastic IP. The address cannot be got back, hence destructive."""

    resource_types = ("aws.elastic-ip",)
    permissions = ("ec2:DescribeAddresses", "ec2:ReleaseAddress")
    destructive = True

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        return ToolCall(
            tool="aws.elastic-ip.release_address",
            args={"account": finding.account, "region": finding.region, "allocation_id": finding.resource_id},
            projected_monthly_savings_usd=finding.monthly_waste_usd,
        )
