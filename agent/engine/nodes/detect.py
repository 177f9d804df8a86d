"""detect: run each policy's detectors over its observations and record the findings.

The observations arrive in the state as one once-only stream per policy (nodes/stream.py);
draining it drives the collector, so detection and collection interleave batch by batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.guard import protection_match
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.domain import Finding, Observation, Resource
from costwarden.tools.sharing import view

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def detect(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    run_id = state["run_id"]

    def price_of(r: Resource) -> Price:
        hourly, source = ctx.prices.hourly(r.provider, r.region, r.kind)
        return Price(hourly, source)

    from costwarden.tools.llm_prices import PriceMap  # the map itself loads only when a detector prices a token

    token_prices = PriceMap(ctx.settings.billing.price_overrides)
    findings: list[Finding] = []
    insufficient: list[dict[str, Any]] = []
    warnings: list[str] = []
    errors: list[str] = []
    # Policies of one resource type each inventory the same scope: count that inventory once, or
    # three EC2 policies would report every instance three times in the headline.
    inventoried_by_type: dict[str, int] = {}
    protected_keys = ctx.store.protected_keys()
    streams = state.get("streams", {})
    drained: set[int] = set()
    for name in ctx.policies:
        stream = streams[name]
        if id(stream) in drained:
            continue  # a shared stream: drained with its first member
        drained.add(id(stream))
        runs = {n: PolicyRun(ctx.policies[n], DetectContext(policy=n, run_id=run_id, now=ctx.now, price_of=price_of,
                                                            token_price=token_prices.price))
                for n in (stream.members or [name])}
        for obs in stream:
            for n, run in runs.items():
                mine = view(obs, stream.members[n]) if stream.members else obs
                if mine is not None:
                    run.take(mine, ctx, findings, protected_keys)
        report = stream.report  # complete now that the stream is drained
        errors.extend(report.errors)  # a shared read's errors once, not once per policy
        warnings.extend(report.warnings)
        for n, run in runs.items():
            lp, dctx = run.lp, run.dctx
            rtype = lp.policy.resource
            inventoried_by_type[rtype] = max(inventoried_by_type.get(rtype, 0), report.inventoried)
            candidates = run.candidates if stream.members else report.candidates
            found = sum(1 for f in findings if f.policy == n)
            ctx.progress(f"detect: {n}: {report.inventoried} resources, {candidates} candidates, "
                         f"{found} findings, {len(dctx.insufficient)} insufficient data, {run.protected} protected"
                         + no_findings_because(candidates, found, run.protected, dctx.insufficient))
            warnings.extend(dctx.warnings)
            insufficient.extend(dctx.insufficient)
    findings.sort(key=lambda f: (-f.monthly_waste_usd, f.resource_id))
    # a duplicate id is an error line, not a crash
    # max-resources counts what a policy flagged in the run: a sweep's own findings, or, for one part of
    # a fanned-out run, every part's stored so far (state/store/runs.py)
    limited = [n for n, lp in ctx.policies.items() if lp.policy.max_resources is not None]
    if ctx.part is not None and limited:
        stored, flagged_in_run = ctx.store.add_findings_counted(run_id, findings, limited, resumed=ctx.resumed)
    else:
        stored = ctx.store.add_findings(run_id, findings, resumed=ctx.resumed)
        flagged_in_run = {n: len({f.resource_id for f in findings if f.policy == n}) for n in limited}
    errors.extend(stored)
    for n in limited:
        over = max_resources_exceeded(ctx.policies[n].policy.max_resources, flagged_in_run[n],
                                      whole_run=ctx.part is not None)
        if over:
            warnings.append(f"{n}: {over}")
            ctx.progress(f"detect: {n}: {over}")
    insufficient.sort(key=lambda x: (x["policy"], x["resource_id"], x["detector"]))
    return {"findings": [f.to_dict() for f in findings], "inventoried": sum(inventoried_by_type.values()),
            "insufficient": insufficient, "errors": errors, "warnings": warnings, "flagged_in_run": flagged_in_run}


class PolicyRun:
    """One policy's detection over the observations it is handed, one at a time."""

    def __init__(self, lp: LoadedPolicy, dctx: DetectContext) -> None:
        self.lp, self.dctx = lp, dctx
        self.candidates = 0
        self.protected = 0

    def take(self, obs: Observation, ctx: SweepContext, findings: list[Finding], protected_keys: set[str]) -> None:
        lp, name = self.lp, self.dctx.policy
        self.candidates += 1
        hit = protection_match(obs.resource.tags, lp.policy.limits.protected_tags) or (
            "protected by a person in Slack" if obs.resource.key in protected_keys else None)
        if hit:
            self.protected += 1
            ctx.store.append_decision(stage="detect", decision="skip", run_id=self.dctx.run_id, policy=name,
                                      policy_hash=lp.content_hash, detail={"resource": obs.resource.key},
                                      reason=f"protected resource ({hit}); excluded before detection")
            return
        findings.extend(lp.filters.evaluate(obs, self.dctx))


def no_findings_because(candidates: int, found: int, protected: int, insufficient: list[dict[str, Any]]) -> str:
    """Why candidates produced fewer findings, so "2 candidates, 0 findings" never stands unexplained."""
    if candidates == 0 or found >= candidates:
        return ""
    reasons = []
    if insufficient:
        metrics = sorted({m.strip() for x in insufficient for m in str(x["metric"]).split(",") if m.strip()})
        required = min(float(x["required_coverage"]) for x in insufficient)
        reasons.append(f"{len({x['resource_id'] for x in insufficient})} without enough data "
                       f"({', '.join(metrics)} under {required:.0%} coverage)")
    if protected:
        reasons.append(f"{protected} protected")
    judged = candidates - found - len({x["resource_id"] for x in insufficient}) - protected
    if judged > 0:
        reasons.append(f"{judged} judged and within the thresholds")
    return " (" + "; ".join(reasons) + ")" if reasons else ""


def max_resources_exceeded(limit: int | None, flagged: int, *, whole_run: bool = False) -> str:
    """The guard's words when a policy flags more resources than its max-resources (empty when within).
    `whole_run`: the count is the fanned-out run's so far, across its parts (state/store/runs.py)."""
    if limit is None or flagged <= limit:
        return ""
    if whole_run:
        return (f"max-resources guard: the policy has flagged {flagged} resources in this run's parts so far, more "
                f"than max-resources={limit}; none of its actions runs in this part (each is only reported)")
    return (f"max-resources guard: the policy flagged {flagged} resources, more than max-resources={limit}; "
            "none of its actions runs this sweep (each is only reported)")
