"""change-instance-type: move an instance to another type (EC2) or machine type (GCE).

The target is fixed in the policy (`to: g6e.12xlarge`) or taken from the finding
(`to: {from_evidence: alternative_type}`), so the detector that priced a cheaper type names it.
By default only stopped instances are changed; the tool refuses a running one before any call.
With `restart: true` (Cloud Custodian's `resize` has the same switch) one tool run stops a running
instance, changes its type and starts it again (`*.resize_instance`, tools/restart_resize.py).
That is downtime, not deletion, so the action is not destructive, but the guard asks a person
even in auto mode unless the policy sets `restart_without_approval: true`.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from costwarden.policies.actions.base import Action, ActionParams, PlanContext, ToolCall
from costwarden.policies.actions.evidence import FromEvidence, PlanError, resolve
from costwarden.policies.registry import actions
from costwarden.policies.resources import provider_of
from costwarden.state.domain import HOURS_PER_MONTH, Finding, money

CURRENT_TYPE_KEYS = ("instance_type", "machine_type", "current_type")


def resize_monthly_savings(current_hourly: Decimal | None, target_hourly: Decimal | None,
                           fallback: Decimal) -> Decimal:
    """(current - target) x 730 h, never below zero (an upsize is not a saving). When either price is
    unknown, the finding's own waste figure stands in rather than a made-up number."""
    if current_hourly is None or target_hourly is None:
        return money(fallback)
    return money(max(Decimal(0), (current_hourly - target_hourly) * HOURS_PER_MONTH))


RESTART_NEEDS_APPROVAL = ("restart: true stops and starts a running instance (downtime); needs approval even in "
                          "auto mode")


class ChangeInstanceTypeParams(ActionParams):
    to: str | FromEvidence = Field(description="Target type, or {from_evidence: <key>} to take it from the finding.")
    restart: bool = Field(False, description="Stop a running instance, change its type, start it again (one action).")
    restart_without_approval: bool = Field(
        False, description="Let an auto-mode policy restart instances without a person; its other limits still apply.")

    @model_validator(mode="after")
    def _approval_opt_out_needs_restart(self) -> ChangeInstanceTypeParams:
        if self.restart_without_approval and not self.restart:
            raise ValueError("restart_without_approval applies only with restart: true")
        return self


@actions.register("change-instance-type")
class ChangeInstanceType(Action):
    resource_types = ("aws.ec2", "gcp.compute")
    permissions = ("ec2:DescribeInstances", "ec2:ModifyInstanceAttribute", "ec2:StopInstances",
                   "ec2:StartInstances", "ec2:CreateTags", "ec2:DeleteTags", "compute.instances.get",
                   "compute.instances.setMachineType", "compute.instances.stop", "compute.instances.start",
                   "compute.instances.setLabels", "compute.zoneOperations.get")  # with restart: the stop, start and mark
    Params = ChangeInstanceTypeParams
    params: ChangeInstanceTypeParams

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        target = str(resolve(self.params.to, finding, action="change-instance-type", field="to")).strip()
        if not target:
            raise PlanError(f"policy {finding.policy!r}, action 'change-instance-type', field 'to': empty target type")
        provider = provider_of(finding.resource_type)
        current = next((str(finding.evidence[k]) for k in CURRENT_TYPE_KEYS if finding.evidence.get(k)), "")
        # both types from the sweep's price book, so a `pricing.overrides` figure counts on either side
        now_hourly = ctx.price_of(provider, finding.region, current)[0] if current else None
        target_hourly = ctx.price_of(provider, finding.region, target)[0]
        saving = resize_monthly_savings(now_hourly, target_hourly, finding.monthly_waste_usd)
        where = {"account": finding.account, "region": finding.region, "instance_id": finding.resource_id}
        key, tool = ("machine_type", "set_machine_type") if provider == "gcp" else ("instance_type", "modify_instance_type")
        if not self.params.restart:
            return ToolCall(f"{finding.resource_type}.{tool}", {**where, key: target}, saving)
        ask = "" if self.params.restart_without_approval else RESTART_NEEDS_APPROVAL
        return ToolCall(f"{finding.resource_type}.resize_instance", {**where, key: target}, saving, approval_reason=ask)
