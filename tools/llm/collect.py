"""Collector for llm.feature: one Observation per product feature, from token-usage logs.

Everything heavy is SQL aggregates in tools.llm.usage; this turns the small results into a
provider-neutral Observation: daily series (cost, requests, tokens) for anomaly detection, and
attrs with the window's per-model totals, request-size histogram and prompt repeats, which the
oversized-model and cache-opportunity detectors price, and per-tier lines (priced cost, requests,
the tier's price, each tenant's requests) for negative-margin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from costwarden.state.domain import Observation, Resource, Series
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector
from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.session import UsageInputs, usage_inputs
from costwarden.tools.llm.usage import UsageLog
from costwarden.tools.llm_prices import PriceMap


def day_epoch(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()


def covered_days(log: UsageLog, start: datetime, end: datetime) -> float:
    """Days of data actually inside [start, end): a 10-day log is not a 30-day month's usage."""
    span = log.span()
    if span is None:
        return 0.0
    lo, hi = max(start, span[0]), min(end, span[1] + timedelta(hours=1))
    return max(1.0, round((hi - lo).total_seconds() / 86400, 2))


def add_tier(tiers: dict[str, dict[str, Any]], tier: str, requests: int, cost: Decimal | None,
             price: float | None, user_requests: list[float]) -> None:
    """Accumulate one usage group into its tier's line (the negative-margin detector's input):
    priced cost and requests, unpriced requests, the tier's price per user-month, and the
    window's requests of each user (sorted, anonymous)."""
    t = tiers.setdefault(tier, {"requests": 0, "unpriced_requests": 0, "cost_usd": 0.0, "price_usd_month": price,
                                "users": len(user_requests), "user_requests": sorted(round(r, 3) for r in user_requests)})
    t["requests"] += requests
    if cost is None:
        t["unpriced_requests"] += requests
    else:
        t["cost_usd"] = round(t["cost_usd"] + float(cost), 6)


def collect_llm_features(source: BillingSettings | UsageInputs, scope: Scope, plan: CollectPlan,
                         report: CollectReport) -> Iterator[Observation]:
    inputs = usage_inputs(source)
    billing = inputs.billing
    if not billing.has_usage:
        return
    try:
        log = inputs.open()
    except BillingInputError as exc:
        report.errors.append(f"llm usage: {exc}")
        return
    prices = PriceMap(billing.price_overrides)
    now = plan.now.astimezone(timezone.utc).replace(tzinfo=None)
    history_start = datetime.combine(now.date() - timedelta(days=billing.lookback_days), datetime.min.time())
    window_start = now - timedelta(days=billing.usage_window_days)
    window_days = covered_days(log, window_start, now)
    unpriced: set[str] = set()

    def cost(model: str, i: int, o: int, c: int) -> Decimal | None:
        price = prices.price(model)
        if price is None:
            unpriced.add(model)
            return None
        return price.cost(i, o, c)

    try:
        days = log.daily(history_start, now)
        groups = log.groups(window_start, now)
        sizes = log.size_cells(window_start, now)
        reps = log.repeats(window_start, now)
        per_tenant = log.tenant_requests(window_start, now)
    except Exception as exc:  # noqa: BLE001 - one bad source must not end the sweep
        report.errors.append(f"llm usage: {exc}")
        return
    per_feature: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "cost": defaultdict(float), "requests": defaultdict(float), "input": defaultdict(float),
        "output": defaultdict(float), "daily_models": [], "models": {}, "sizes": [], "repeats": {}, "tiers": {}})
    for d in days:
        f = per_feature[d.feature]
        c = cost(d.model, d.input_tokens, d.output_tokens, d.cache_read_tokens)
        f["cost"][d.day] += float(c or 0)
        f["requests"][d.day] += d.requests
        f["input"][d.day] += d.input_tokens
        f["output"][d.day] += d.output_tokens
        f["daily_models"].append([d.day.isoformat(), d.model, d.requests, float(c) if c is not None else None])
    for g in groups:
        f = per_feature[g.feature]
        m = f["models"].setdefault(g.model, {"provider": g.provider, "requests": 0, "successes": 0,
                                             "input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0,
                                             "cost_usd": 0.0})
        m["requests"] += g.requests
        m["successes"] += g.requests if g.outcome == "success" else 0
        m["input_tokens"] += g.input_tokens
        m["output_tokens"] += g.output_tokens
        m["cache_read_tokens"] += g.cache_read_tokens
        c = cost(g.model, g.input_tokens, g.output_tokens, g.cache_read_tokens)
        m["cost_usd"] = None if c is None or m["cost_usd"] is None else round(m["cost_usd"] + float(c), 6)
        if g.tier:
            add_tier(f["tiers"], g.tier, g.requests, c, billing.tier_revenue_usd_month.get(g.tier),
                     per_tenant.get((g.feature, g.tier), []))
    for s in sizes:
        per_feature[s.feature]["sizes"].append([s.model, s.input_le, s.output_le, s.requests, s.input_tokens,
                                                s.output_tokens, s.cache_read_tokens])
    for r in reps:
        per_feature[r.feature]["repeats"][r.model] = {
            "hashed_requests": r.hashed_requests, "repeat_requests": r.repeat_requests,
            "repeat_input_tokens": r.repeat_input_tokens, "repeat_output_tokens": r.repeat_output_tokens,
            "prefixed_requests": r.prefixed_requests, "repeat_prefix_tokens": r.repeat_prefix_tokens,
            "cache_read_tokens": r.cache_read_tokens}
    for model in sorted(unpriced):
        report.warnings.append(f"llm usage: no price for model {model!r} in LiteLLM's price map or "
                             f"billing.price_overrides: its usage is unpriced")
    for name, f in sorted(per_feature.items()):
        report.inventoried += 1
        top = max(f["models"].items(), key=lambda kv: kv[1]["requests"], default=(None, {}))
        resource = Resource(
            provider="llm", account=str(top[1].get("provider", "unknown")), region="global",
            resource_type="llm.feature", resource_id=name, kind=top[0] or "", state="active",
            tags={"feature": name},
            attrs={"window_days": window_days, "models": f["models"], "sizes": f["sizes"],
                   "repeats": f["repeats"], "tiers": f["tiers"], "daily_models": f["daily_models"],
                   "unpriced_models": sorted(m for m in f["models"] if m in unpriced)})
        if not plan.wants(resource):
            continue
        report.candidates += 1
        series = {name_: Series(name_, [(day_epoch(d), v) for d, v in sorted(f[key].items())])
                  for name_, key in (("cost_usd", "cost"), ("requests", "requests"), ("input_tokens", "input"),
                                     ("output_tokens", "output"))}
        yield Observation(resource, series)
    log.close()


def _source(settings: Any, providers: Any = None) -> UsageInputs:
    """The billing settings and the sweep's usage session (one ingest for every policy)."""
    return UsageInputs(settings.billing, getattr(providers, "usage", None))


register_collector(CollectorSpec("llm.feature", "llm", collect_llm_features, source=_source, permissions=()))
