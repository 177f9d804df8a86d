"""collect: open the read-only data streams for each policy's scope.

The streams are lazy on purpose: `detect` drains them batch by batch (inventory page ->
batched metrics -> detection), so a sweep of thousands of instances never holds all their
series at once. Only read calls are made; the dry-run hook would refuse anything else.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agent.context import SweepContext
from agent.nodes.state import SweepState
from tools.aws.collect import CollectReport, collect_ec2


def collect(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    for name, lp in ctx.policies.items():
        report = CollectReport()
        ctx.collect_reports[name] = report
        if lp.policy.resource == "aws.ec2":
            metrics = list({m for d in lp.detectors for m in d.metrics()})
            lookback = max(d.lookback_hours for d in lp.detectors)
            ctx.streams[name] = collect_ec2(
                ctx.providers.aws, ctx.settings.aws.regions,
                wants=lambda r, lp=lp: any(d.wants(r) for d in lp.detectors),
                metrics=sorted(metrics, key=lambda m: m.name), lookback_hours=lookback, now=ctx.now,
                report=report)
        ctx.progress(f"collect: {name} ({lp.policy.resource}) in {', '.join(ctx.settings.aws.regions)}")
    return {}
