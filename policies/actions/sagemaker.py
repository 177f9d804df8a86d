"""SageMaker endpoint actions."""

from __future__ import annotations

from costwarden.policies.actions.base import Action, PlanContext, ToolCall
from costwarden.policies.registry import actions
from costwarden.state.domain import Finding


@actions.register("delete-endpoint")
class DeleteEndpoint(Action):
    """Delete the endpoint; its endpoint config is kept and its full description is recorded as the
    action's before-state, so CreateEndpoint can bring it back. The saving is its instances' run-rate."""

    resource_types = ("aws.sagemaker-endpoint",)
    permissions = ("sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:ListTags",
                   "sagemaker:DeleteEndpoint")  # the description it records, to recreate the endpoint
    destructive = True

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        return ToolCall(
            tool="aws.sagemaker-endpoint.delete_endpoint",
            args={"account": finding.account, "region": finding.region, "endpoint_name": finding.resource_id},
            projected_monthly_savings_usd=finding.monthly_waste_usd,
        )
