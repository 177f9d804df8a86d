"""tag (Cloud Custodian's `tag` action): set tags on the resource, e.g. `owner: unknown` on what lacks one.

Tagging saves nothing by itself, so its projected saving is $0. It goes through the same guarded
tag tools as mark-for-op (policies/actions/mark.py), so dry-run refuses it like any change.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from costwarden.policies.actions.base import Action, ActionParams, PlanContext, ToolCall
from costwarden.policies.actions.mark import INSTANCES, tag_call
from costwarden.policies.registry import actions
from costwarden.state.domain import Finding


class TagParams(ActionParams):
    key: str | None = Field(None, min_length=1, max_length=128, description="One tag's key (with `value`).")
    value: str = Field("", max_length=256, description="That tag's value.")
    tags: dict[str, str] = Field(default_factory=dict, description="Several tags at once, key: value.")

    @model_validator(mode="after")
    def _some(self) -> TagParams:
        if not self.key and not self.tags:
            raise ValueError("tag needs `key` (and `value`) or `tags`")
        return self

    @property
    def all_tags(self) -> dict[str, str]:
        return {**self.tags, **({self.key: self.value} if self.key else {})}


@actions.register("tag")
class Tag(Action):
    resource_types = INSTANCES
    permissions = ("ec2:DescribeInstances", "ec2:CreateTags",
                   "compute.instances.get", "compute.instances.setLabels", "compute.zoneOperations.get")
    Params = TagParams
    params: TagParams

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        tool, args = tag_call(finding, self.params.all_tags)
        return ToolCall(tool=tool, args=args, projected_monthly_savings_usd=Decimal("0.00"))
