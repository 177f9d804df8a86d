"""EBS volume actions."""

from __future__ import annotations

from decimal import Decimal

from costwarden.policies.actions.base import Action, PlanContext, ToolCall
from costwarden.policies.registry import actions
from costwarden.state.domain import Finding, money


@actions.register("snapshot-and-delete")
class SnapshotAndDelete(Action):
    """Snapshot an unattached volume, wait for the snapshot to complete, then delete the volume.
    The saving is the volume's cost less what keeping the snapshot may cost."""

    resource_types = ("aws.ebs-volume",)
    permissions = ("ec2:DescribeVolumes", "ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags",
                   "ec2:DeleteVolume")  # CreateTags: the snapshot is created with its tags
    destructive = True

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        kept = Decimal(str(finding.evidence.get("snapshot_monthly_usd_upper_bound", 0)))
        return ToolCall(
            tool="aws.ebs-volume.snapshot_and_delete",
            args={"account": finding.account, "region": finding.region, "volume_id": finding.resource_id},
            projected_monthly_savings_usd=money(max(Decimal(0), finding.monthly_waste_usd - kept)),
        )
