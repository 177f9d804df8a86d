"""Several policies of one resource type, one read: the plan they share and each policy's view of it.

Why: each policy used to run its own collector, so the shipped packs' three EC2 policies described
every region's instances three times and asked CloudWatch three times for the same series (issue
#20). The policies of a type now read through one plan: its candidates are those any policy wants,
each candidate's metrics are the union of what the policies wanting it ask for, and its window is
the longest lookback. Every policy then sees only what a read of its own would have returned: its
candidates, its metrics, its window (points before its own start are sliced off). A series the
read did not return stays absent, never an empty or zero one made up here.

Pure functions; the collector that reads is unchanged (it is handed the shared plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from costwarden.state.domain import MetricRequest, Observation, Resource, Series
from costwarden.tools.collectors import CollectPlan, window


@dataclass(frozen=True)
class Member:
    """One policy reading through a shared plan."""

    policy: str
    plan: CollectPlan


def can_share(members: Sequence[Member]) -> bool:
    """Whether one read can serve them all, exactly as separate reads would.

    Not when two policies ask one metric name with a different statistic or period (series are keyed
    by name), nor when a shorter lookback does not start on a period boundary of the longer read
    (its first point would then aggregate a different interval)."""
    if len(members) < 2 or len({m.plan.now for m in members}) != 1:
        return False
    by_name: dict[str, MetricRequest] = {}
    for m in members:
        for req in m.plan.metrics:
            if by_name.setdefault(req.name, req) != req:
                return False
    longest = max(m.plan.lookback_hours for m in members)
    return all((longest - m.plan.lookback_hours) * 3600 % req.period_seconds == 0
               for m in members for req in m.plan.metrics)


def shared_plan(members: Sequence[Member]) -> CollectPlan:
    """The plan one collector runs for all `members` (check `can_share` first)."""
    plans = [m.plan for m in members]

    def wants(r: Resource) -> bool:
        return any(p.wants(r) for p in plans)

    def metrics_for(r: Resource) -> list[MetricRequest]:
        return _union([p for p in plans if p.wants(r)])

    return CollectPlan(wants=wants, metrics=_union(plans), lookback_hours=max(p.lookback_hours for p in plans),
                       now=plans[0].now, metrics_for=metrics_for)


def _union(plans: Sequence[CollectPlan]) -> list[MetricRequest]:
    return sorted({req for p in plans for req in p.metrics}, key=lambda m: (m.name, m.stat, m.period_seconds))


def view(obs: Observation, plan: CollectPlan) -> Observation | None:
    """What a read by `plan` alone would have yielded for this observation; None if it wants none of it.

    The series dict is rebuilt (not the shared one mutated), so each policy's detectors see their
    own metrics only, within their own window."""
    if not plan.wants(obs.resource):
        return None
    start = window(plan.now, plan.lookback_hours)[0].timestamp()
    series: dict[str, Series] = {}
    for req in plan.metrics:
        s = obs.series.get(req.name)
        if s is not None:
            series[req.name] = Series(s.name, [p for p in s.points if p[0] >= start])
    return Observation(obs.resource, series)
