"""collect: open the read-only data streams for each policy's scope.

The streams are lazy on purpose: `detect` drains them batch by batch (inventory page ->
batched metrics -> detection), so a sweep of thousands of instances never holds all their
series at once. Each stream travels to `detect` in the graph's state, one per policy, with the
report its collector fills in as it is read. Only read calls are made; the dry-run hook would
refuse anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.agent.engine.nodes.stream import ObservationStream
from costwarden.tools.collectors import CollectPlan, CollectReport, Scope, get_collector

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def collect(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    streams: dict[str, ObservationStream] = {}
    for name, lp in ctx.policies.items():
        spec = get_collector(lp.policy.resource)
        report = CollectReport()
        plan = CollectPlan(
            wants=lambda r, lp=lp: lp.filters.wants(r, ctx.now),
            metrics=sorted({m for d in lp.detectors for m in d.metrics()}, key=lambda m: m.name),
            lookback_hours=max((d.lookback_hours for d in lp.detectors), default=0), now=ctx.now)
        scope = Scope(regions=list(ctx.settings.aws.regions))
        clients = (spec.source(ctx.settings, ctx.providers) if spec.source
                   else ctx.providers.clients_for(spec.provider))
        streams[name] = ObservationStream(name, spec.collect(clients, scope, plan, report), report)
        where = ", ".join(scope.regions) if spec.provider == "aws" else spec.provider
        ctx.progress(f"collect: {name} ({lp.policy.resource}) from {where}")
    return {"streams": streams}
