"""mark-for-op and unmark (Cloud Custodian's vocabulary): tag a resource now, act on it later.

`mark-for-op` gives the owner notice: the resource is tagged `costwarden:op=stop@2026-11-30`
(`costwarden-op=stop_2026-11-30` as a GCP label), and a policy with the `marked-for-op` filter
takes the op once that date has come. Marking saves nothing by itself, so its projected saving
is $0; the op's own action carries the saving when it is planned.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator

from costwarden.policies.actions.base import Action, ActionParams, PlanContext, ToolCall
from costwarden.policies.actions.marks import encode_op, op_prefix, tag_key
from costwarden.policies.registry import actions
from costwarden.policies.resources import provider_of
from costwarden.state.domain import Finding

INSTANCES = ("aws.ec2", "gcp.compute")


def tag_call(finding: Finding, tags: dict[str, str], *, keep_prefix: str | None = None) -> tuple[str, dict[str, Any]]:
    """The guarded tool and arguments that set `tags` (already in the provider's form) on the resource."""
    base = {"account": finding.account, "region": finding.region, "instance_id": finding.resource_id}
    extra: dict[str, Any] = {"keep_prefix": keep_prefix} if keep_prefix is not None else {}
    if provider_of(finding.resource_type) == "gcp":
        return "gcp.compute.set_labels", {**base, "labels": tags, **extra}
    return f"{finding.resource_type}.tag_resource", {**base, "tags": tags, **extra}


def untag_call(finding: Finding, keys: list[str]) -> tuple[str, dict[str, Any]]:
    base = {"account": finding.account, "region": finding.region, "instance_id": finding.resource_id}
    if provider_of(finding.resource_type) == "gcp":
        return "gcp.compute.remove_labels", {**base, "keys": keys}
    return f"{finding.resource_type}.untag_resource", {**base, "keys": keys}


class MarkForOpParams(ActionParams):
    op: str = Field(description="The action a later policy takes, e.g. stop.")
    days: int = Field(4, ge=0, le=365, description="Notice in days: the op is due this many days after marking.")
    tag: str = Field("costwarden:op", min_length=1, max_length=60, description="The tag holding marks.")

    @field_validator("op")
    @classmethod
    def _known_op(cls, v: str) -> str:
        if v not in actions:
            raise ValueError(f"unknown op {v!r}; known: {', '.join(actions.names())}")
        return v


@actions.register("mark-for-op")
class MarkForOp(Action):
    """Tag the resource with the op and its due date. An existing mark for the same op is kept, so a
    finding raised every day cannot push the date forward forever."""

    resource_types = INSTANCES
    permissions = ("ec2:DescribeInstances", "ec2:CreateTags", "ec2:DeleteTags",
                   "compute.instances.get", "compute.instances.setLabels", "compute.zoneOperations.get")
    Params = MarkForOpParams
    params: MarkForOpParams

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        provider = provider_of(finding.resource_type)
        # the sweep's day in UTC, the same day the marked-for-op filter later counts the notice from
        today = ctx.now.astimezone(timezone.utc).date() if ctx.now.tzinfo else ctx.now.date()
        due = today + timedelta(days=self.params.days)
        key = tag_key(self.params.tag, provider)
        tool, args = tag_call(finding, {key: encode_op(self.params.op, due, provider)},
                              keep_prefix=op_prefix(self.params.op, provider))
        return ToolCall(tool=tool, args=args, projected_monthly_savings_usd=Decimal("0.00"))


class UnmarkParams(ActionParams):
    tag: str = Field("costwarden:op", min_length=1, max_length=60, description="The tag holding marks.")


@actions.register("unmark")
class Unmark(Action):
    """Remove a mark (e.g. when the finding that asked for it has cleared). Saves nothing by itself."""

    resource_types = INSTANCES
    permissions = ("ec2:DescribeInstances", "ec2:DeleteTags",
                   "compute.instances.get", "compute.instances.setLabels", "compute.zoneOperations.get")
    Params = UnmarkParams
    params: UnmarkParams

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        tool, args = untag_call(finding, [tag_key(self.params.tag, provider_of(finding.resource_type))])
        return ToolCall(tool=tool, args=args, projected_monthly_savings_usd=Decimal("0.00"))
