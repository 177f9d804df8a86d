"""collect: open the read-only data streams for each policy's scope.

The streams are lazy on purpose: `detect` drains them batch by batch (inventory page ->
batched metrics -> detection), so a sweep of thousands of instances never holds all their
series at once. Each stream travels to `detect` in the graph's state, one per policy, with the
report its collector fills in as it is read. Only read calls are made; the dry-run hook would
refuse anything else.

The cloud policies of one resource type share one stream (tools/sharing.py): each account,
region and type is described once a sweep and each series fetched once, whatever the number of
policies, and `detect` hands every policy only what a read of its own would have returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.agent.engine.nodes.stream import ObservationStream
from costwarden.policies.loader import LoadedPolicy
from costwarden.tools.collectors import CollectPlan, CollectReport, CollectorSpec, Scope, get_collector
from costwarden.tools.sharing import Member, can_share, shared_plan

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def collect(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    scope = Scope(regions=list(ctx.settings.aws.regions), inventory=ctx.inventory)
    groups: dict[str, list[Member]] = {}
    for name, lp in ctx.policies.items():
        groups.setdefault(lp.policy.resource, []).append(Member(name, plan_of(lp, ctx)))
    streams: dict[str, ObservationStream] = {}
    for rtype, members in groups.items():
        spec = get_collector(rtype)
        where = ", ".join(scope.regions) if spec.provider == "aws" else spec.provider
        if shares(spec, members):
            report = CollectReport()
            label = " + ".join(m.policy for m in members)
            clients = ctx.providers.clients_for(spec.provider)
            stream = ObservationStream(label, spec.collect(clients, scope, shared_plan(members), report), report,
                                       members={m.policy: m.plan for m in members})
            streams.update({m.policy: stream for m in members})
            ctx.progress(f"collect: {label} ({rtype}, one shared read) from {where}")
            continue
        for m in members:
            report = CollectReport()
            clients = (spec.source(ctx.settings, ctx.providers) if spec.source
                       else ctx.providers.clients_for(spec.provider))
            streams[m.policy] = ObservationStream(m.policy, spec.collect(clients, scope, m.plan, report), report)
            ctx.progress(f"collect: {m.policy} ({rtype}) from {where}")
    return {"streams": streams}


def plan_of(lp: LoadedPolicy, ctx: SweepContext) -> CollectPlan:
    """What the policy's detectors need: the resources any of them wants, their metrics, the longest lookback."""
    return CollectPlan(
        wants=lambda r, lp=lp: lp.filters.wants(r, ctx.now),
        metrics=sorted({m for d in lp.detectors for m in d.metrics()}, key=lambda m: m.name),
        lookback_hours=max((d.lookback_hours for d in lp.detectors), default=0), now=ctx.now)


def shares(spec: CollectorSpec, members: list[Member]) -> bool:
    """Cloud collectors only (a file source is read per policy, as before); outside AWS, whose
    CloudWatch points are stamped with their period's start, only policies of one lookback share,
    so slicing a longer read never changes which interval a policy's first point covers."""
    if spec.source is not None or spec.provider not in ("aws", "gcp") or not can_share(members):
        return False
    return spec.provider == "aws" or len({m.plan.lookback_hours for m in members}) == 1
