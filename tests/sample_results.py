"""Sample sweep results shared by the report tests (test_report_html, test_report_window)."""

from __future__ import annotations

from decimal import Decimal

from costwarden.agent.engine.sweep import SweepResult
from costwarden.state.domain import Finding, PlannedAction


def sweep_result() -> SweepResult:
    """A small dry-run sweep: two idle GPUs (one with an hourly profile) and an oversized model, one
    action waiting for approval and one skipped; the report and digest tests render it."""

    def finding(fid: str, detector: str, waste: str, tags: dict[str, str], **ev: object) -> Finding:
        return Finding(id=fid, policy="p", detector=detector, provider="aws", account="1", region="us-east-1",
                       resource_id=fid.replace("f", "i-"), resource_type="aws.ec2", evidence=dict(ev),
                       monthly_waste_usd=Decimal(waste), severity="high", rationale=f"why {fid}", tags=tags)

    profile = [1.0] * 12 + [None] * 12
    fs = [finding("f1", "idle-gpu", "16030.80", {"team": "research", "Name": "gpu-a"},
                  gpu_util_by_hour_utc_pct=profile, instance_type="p4d.24xlarge"),
          finding("f2", "idle-gpu", "884.76", {"team": "search"}),
          finding("f3", "oversized-model", "109.81", {"feature": "helpdesk"})]
    acts = [PlannedAction(id="a1", finding_id="f1", policy="p", action="stop", tool="aws.ec2.stop_instance",
                          args={}, projected_monthly_savings_usd=Decimal("16030.80"), resource_key="k1",
                          decision="needs_approval", status="dry_run"),
            PlannedAction(id="a2", finding_id="f2", policy="p", action="stop", tool="aws.ec2.stop_instance",
                          args={}, projected_monthly_savings_usd=Decimal("884.76"), resource_key="k2",
                          decision="skip", status="skipped")]
    return SweepResult(run_id="run_x", dry_run=True, status="done", findings=fs, actions=acts)
