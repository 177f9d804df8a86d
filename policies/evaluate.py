"""How one policy's `filters` judge one resource: c7n's reading (all of them, AND), plus findings.

The rules, stated once (docs/concepts/filters.md says the same to users):

- Plain filters (`value`, `tag:Key`, `and`/`or`/`not`) narrow the set: a resource must pass all.
- Detectors at the top level must all flag what is left. One detector: its finding, unchanged.
  Several: one finding, the first detector's, whose evidence lists the others under
  `also_flagged_by`, and whose monthly waste is the largest of their estimates, never their sum:
  they price the same resource's waste, so adding them would count it twice.
- Detectors in one top-level `or` block: any of them may flag, and each that flags gives its own
  finding (each a different waste, e.g. a spend anomaly and a cache opportunity of one feature).
  Detectors anywhere else (inside `and`/`not`, deeper in an `or`) are refused at load time.
- No detector at all: a resource that passes is a finding of detector `filters` with no waste
  estimated ($0, `monthly_waste_estimated: false`), so a c7n-style "tag what matches" policy acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from costwarden.policies.detectors.base import DetectContext, Detector, PlainFilter, severity_for
from costwarden.policies.detectors.boolean import Block, Or
from costwarden.state.domain import Finding, Observation, Resource, money, short_hash

MATCH_DETECTOR = "filters"  # the detector name of a finding made by plain filters alone
CONFIDENCE_ORDER = ("low", "medium", "high")


class PlacementError(ValueError):
    """A detector where it cannot give a finding; `path` is its index path in `filters`."""

    def __init__(self, path: tuple[int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass
class PolicyFilters:
    plain: list[PlainFilter] = field(default_factory=list)
    detectors: list[Detector] = field(default_factory=list)  # all must flag
    any_of: list[Detector] = field(default_factory=list)  # a top-level `or` of detectors: each flags alone

    @property
    def all_detectors(self) -> list[Detector]:
        return [*self.detectors, *self.any_of]

    def passes(self, r: Resource, now: datetime) -> bool:
        return all(f.matches(r, now) for f in self.plain)

    def wants(self, r: Resource, now: datetime) -> bool:
        """The collector's pre-filter: only these resources get metrics fetched."""
        return (self.passes(r, now) and all(d.wants(r) for d in self.detectors)
                and (not self.any_of or any(d.wants(r) for d in self.any_of)))

    def evaluate(self, obs: Observation, ctx: DetectContext) -> list[Finding]:
        r = obs.resource
        if not self.passes(r, ctx.now):
            return []
        flagged: list[Finding] = []
        for d in self.detectors:
            f = d.detect(obs, ctx) if d.wants(r) else None
            if f is None:
                return []  # all must flag: one silent detector is no finding
            flagged.append(f)
        base = merge(flagged) if flagged else None
        if self.any_of:
            each = [f for d in self.any_of if d.wants(r) and (f := d.detect(obs, ctx)) is not None]
            return [merge([base, f]) if base else f for f in each]
        return [base] if base else [matched(r, ctx, self.plain)]


def arrange(built: list[Detector]) -> PolicyFilters:
    """Sort a policy's built top-level filters by role; PlacementError where a detector cannot stand."""
    out = PolicyFilters()
    for i, f in enumerate(built):
        if isinstance(f, Or) and any(not isinstance(c, PlainFilter) for c in f.children):
            if out.any_of:
                raise PlacementError((i,), "only one `or` block of detectors per policy (each gives its own findings)")
            for k, c in enumerate(f.children):
                if isinstance(c, PlainFilter):
                    raise PlacementError((i, k), f"an `or` block mixes detectors with the plain filter {c.name!r}; "
                                                 "put plain filters in their own block")
            out.any_of = list(f.children)
        elif isinstance(f, PlainFilter):
            _no_detector_inside(f, (i,))
            out.plain.append(f)
        else:
            out.detectors.append(f)
    return out


def _no_detector_inside(f: PlainFilter, path: tuple[int, ...]) -> None:
    if not isinstance(f, Block):
        return
    for k, c in enumerate(f.children):
        if not isinstance(c, PlainFilter):
            raise PlacementError(path + (k,), f"detector {c.name!r} inside a `{f.name}` block: a detector stands at "
                                              "the top level of filters or in a top-level `or` of detectors")
        _no_detector_inside(c, path + (k,))


def merge(found: list[Finding]) -> Finding:
    """One finding from several detectors flagging one resource: the first's, the largest waste, all evidence."""
    if len(found) == 1:
        return found[0]
    first = found[0]
    waste = max(f.monthly_waste_usd for f in found)
    evidence = dict(first.evidence)
    evidence["also_flagged_by"] = {f.detector: {"monthly_waste_usd": float(f.monthly_waste_usd),
                                                "evidence": f.evidence} for f in found[1:]}
    evidence["monthly_waste_rule"] = ("largest of " + ", ".join(f"{f.detector} ${f.monthly_waste_usd:,.2f}"
                                                                for f in found) + " (one resource's waste, not added)")
    confidence = min((f.confidence for f in found),
                     key=lambda c: CONFIDENCE_ORDER.index(c) if c in CONFIDENCE_ORDER else 0)
    return Finding(id=first.id, policy=first.policy, detector=first.detector, provider=first.provider,
                   account=first.account, region=first.region, resource_id=first.resource_id,
                   resource_type=first.resource_type, evidence=evidence, monthly_waste_usd=money(waste),
                   severity=severity_for(waste), confidence=confidence, tags=dict(first.tags))


def matched(r: Resource, ctx: DetectContext, plain: list[PlainFilter]) -> Finding:
    """The finding of a policy without detectors: the resource passed every filter; no waste is claimed."""
    names = [f.name for f in plain] or ["(none)"]
    return Finding(
        id="fnd_" + short_hash(ctx.run_id, ctx.policy, MATCH_DETECTOR, r.key), policy=ctx.policy,
        detector=MATCH_DETECTOR, provider=r.provider, account=r.account, region=r.region,
        resource_id=r.resource_id, resource_type=r.resource_type,
        evidence={"signal": "policy_filters_matched", "filters": names, "monthly_waste_estimated": False,
                  "state": r.state, "kind": r.kind,
                  "summary": f"{r.resource_id} matches every filter of policy {ctx.policy}; no waste is estimated."},
        monthly_waste_usd=money(Decimal(0)), severity="low", confidence="high", tags=dict(r.tags))
