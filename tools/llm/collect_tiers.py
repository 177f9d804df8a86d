"""Collector for llm.tier: one Observation per pricing tier, its whole LLM usage across features.

The negative-margin detector with `by: tier` reads it: a tier can lose money on its users without
any one feature doing so. Its attrs hold one tier line in the same shape as an llm.feature's
`tiers` (tools/llm/collect.py), with each tenant's requests summed over every feature it used.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

from costwarden.state.domain import Observation, Resource
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector
from costwarden.tools.llm.collect import add_tier, covered_days
from costwarden.tools.llm.session import UsageInputs, usage_inputs
from costwarden.tools.llm_prices import PriceMap


def collect_llm_tiers(source: BillingSettings | UsageInputs, scope: Scope, plan: CollectPlan,
                      report: CollectReport) -> Iterator[Observation]:
    inputs = usage_inputs(source)
    billing = inputs.billing
    if not billing.has_usage:
        return
    try:
        log = inputs.open()
        now = plan.now.astimezone(timezone.utc).replace(tzinfo=None)
        start = now - timedelta(days=billing.usage_window_days)
        groups = log.groups(start, now, prices=PriceMap(billing.price_overrides))
        per_tenant = log.tenant_requests(start, now, keys="tier")
        window_days = covered_days(log, start, now)
    except Exception as exc:  # noqa: BLE001 - one bad source must not end the sweep
        report.errors.append(f"llm usage: {exc}")
        return
    tiers: dict[str, dict[str, Any]] = {}
    for g in groups:
        if g.tier:
            add_tier(tiers, g.tier, g.requests, g.cost_usd, billing.tier_revenue_usd_month.get(g.tier),
                     per_tenant.get((g.tier,), []))
    for tier, line in sorted(tiers.items()):
        report.inventoried += 1
        resource = Resource(provider="llm", account="all", region="global", resource_type="llm.tier",
                            resource_id=tier, kind="tier", state="active", tags={"tier": tier},
                            attrs={"window_days": window_days, "tiers": {tier: line}})
        if not plan.wants(resource):
            continue
        report.candidates += 1
        yield Observation(resource)


def _source(settings: Any, providers: Any = None) -> UsageInputs:
    """The billing settings and the sweep's usage session (one ingest for every policy)."""
    return UsageInputs(settings.billing, getattr(providers, "usage", None))


register_collector(CollectorSpec("llm.tier", "llm", collect_llm_tiers, source=_source, permissions=()))
