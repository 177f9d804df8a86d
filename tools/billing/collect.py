"""Collectors for billing.focus (daily spend per provider, account and service from FOCUS
exports) and billing.budget (month-to-date spend of each configured budget's scope).

Both run aggregate SQL over the exports and yield small provider-neutral Observations; one bad
export is a line in the report's errors, never the end of the sweep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from state.domain import Observation, Resource, Series
from tools.billing.focus import BillingInputError, FocusExport
from tools.billing.settings import BillingSettings, BudgetSpec
from tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector
from tools.llm.collect import day_epoch
from tools.llm.usage import UsageLog
from tools.llm_prices import PriceMap

_FOCUS_DIM = {"account": "sub_account", "service": "service", "feature": "feature", "team": "team", "env": "env"}


def _now(plan: CollectPlan) -> datetime:
    return plan.now.astimezone(timezone.utc).replace(tzinfo=None)


def collect_focus(billing: BillingSettings, scope: Scope, plan: CollectPlan,
                  report: CollectReport) -> Iterator[Observation]:
    if not billing.focus_paths:
        return
    now = _now(plan)
    start = now.date() - timedelta(days=billing.lookback_days)
    try:
        fx = FocusExport(billing.focus_paths, cost_column=billing.cost_column, tag_map=billing.tag_map)
        rows = fx.daily_spend(["provider", "billing_account", "sub_account", "service"], start, now)
    except BillingInputError as exc:
        report.errors.append(f"focus: {exc}")
        return
    cells: dict[tuple[Any, ...], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        k = r.keys
        cells[(k["provider"], k["billing_account"], k["sub_account"], k["service"], r.currency)].append(
            (day_epoch(r.day), float(r.cost)))
    for (provider, billing_account, sub_account, service, currency), points in sorted(
            cells.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        report.inventoried += 1
        resource = Resource(
            provider="focus", account=str(sub_account or billing_account), region="global",
            resource_type="billing.focus", resource_id=f"{provider}/{service}", kind=str(service), state="billed",
            attrs={"provider_name": provider, "service": service, "billing_account": billing_account,
                   "currency": currency, "cost_column": billing.cost_column})
        if plan.wants(resource):
            report.candidates += 1
            yield Observation(resource, {"cost_usd": Series("cost_usd", points)})
    fx.close()


def _budget_daily(b: BudgetSpec, billing: BillingSettings, month_start: datetime, now: datetime,
                  cache: dict[str, Any]) -> tuple[dict[float, float], dict[str, int]]:
    """Daily spend of the budget's scope this month, and token volumes when it comes from usage."""
    if b.source == "llm":
        if "usage" not in cache:
            cache["usage"] = UsageLog(billing.usage_paths)
        log: UsageLog = cache["usage"]
        prices = cache.setdefault("prices", PriceMap(billing.price_overrides))
        daily: dict[float, float] = defaultdict(float)
        volumes = {"requests": 0, "input_tokens": 0, "output_tokens": 0}
        for d in log.daily(month_start, now):
            if b.scope == "feature" and d.feature != b.value:
                continue
            price = prices.price(d.model)
            daily[day_epoch(d.day)] += float(price.cost(d.input_tokens, d.output_tokens, d.cache_read_tokens)) \
                if price else 0.0
            volumes["requests"] += d.requests
            volumes["input_tokens"] += d.input_tokens
            volumes["output_tokens"] += d.output_tokens
        return dict(daily), volumes
    if "focus" not in cache:
        cache["focus"] = FocusExport(billing.focus_paths, cost_column=billing.cost_column, tag_map=billing.tag_map)
    fx: FocusExport = cache["focus"]
    filters = {} if b.scope == "total" else {_FOCUS_DIM[b.scope]: str(b.value)}
    rows = fx.daily_spend([], month_start, now, filters=filters)
    return {day_epoch(r.day): float(r.cost) for r in rows}, {}


def collect_budgets(billing: BillingSettings, scope: Scope, plan: CollectPlan,
                    report: CollectReport) -> Iterator[Observation]:
    now = _now(plan)
    month_start = datetime(now.year, now.month, 1)
    cache: dict[str, Any] = {}
    for b in billing.budgets:
        paths = billing.usage_paths if b.source == "llm" else billing.focus_paths
        if not paths:
            report.errors.append(f"budget {b.name}: no billing.{'usage' if b.source == 'llm' else 'focus'}_paths "
                                 f"configured to measure it")
            continue
        try:
            daily, volumes = _budget_daily(b, billing, month_start, now, cache)
        except BillingInputError as exc:
            report.errors.append(f"budget {b.name}: {exc}")
            continue
        report.inventoried += 1
        resource = Resource(provider="billing", account=str(b.value if b.scope == "account" else "-"),
                            region="global", resource_type="billing.budget", resource_id=b.name, kind=b.scope,
                            state="active", attrs={"scope": b.scope, "value": b.value, "source": b.source,
                                                   "monthly_budget_usd": b.monthly_usd, **volumes})
        if plan.wants(resource):
            report.candidates += 1
            yield Observation(resource, {"cost_usd": Series("cost_usd", sorted(daily.items()))})
    for v in cache.values():
        if hasattr(v, "close"):
            v.close()


def _source(settings: Any) -> BillingSettings:
    return settings.billing


register_collector(CollectorSpec("billing.focus", "focus", collect_focus, source=_source))
register_collector(CollectorSpec("billing.budget", "billing", collect_budgets, source=_source))
