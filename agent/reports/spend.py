"""The billing and token-economics document: spend by service and team, LLM unit costs, tier margins,
the reconciliation of token spend against the bill, and spend anomalies, as one JSON-able dictionary.

`costwarden report` prints it; the audit's HTML and Markdown reports fold parts of it into their
sections. It lives with the reports rather than the CLI so that both reach it without the report
package importing the command line.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from costwarden.policies.economics import TierMargin
from costwarden.tools.billing.columns import SpendRow
from costwarden.tools.billing.settings import BillingSettings


# said above the margin tables in the terminal, the HTML and the Markdown when distinct users are
# HyperLogLog estimates (a source sent sketches for the window: LiteLLM cell-hours of more than 16 tenants)
USERS_ESTIMATED = "users: estimated (HyperLogLog, about ±1.6%) for sources that send sketches"


def rounded(v: Decimal | float | None, places: int = 2) -> float | None:
    """An amount as a JSON number: the documents carry floats rounded for people, not exact decimals."""
    return None if v is None else round(float(v), places)


TOP_SERVICES = 15  # rows of a spend table before the "other" row


def top_with_other(rows: list[SpendRow], top: int, label: str) -> list[dict[str, Any]]:
    """The `top` largest rows of each currency, then one "other" row with the rest, so every table sums
    to its total: nothing is hidden. A row without a value (an untagged resource) says so."""
    out: list[dict[str, Any]] = []
    by_currency: dict[str, list[SpendRow]] = {}
    for r in rows:
        by_currency.setdefault(r.currency, []).append(r)
    for currency, cur_rows in sorted(by_currency.items()):
        cur_rows.sort(key=lambda r: -r.cost)
        shown, rest = cur_rows[:top], cur_rows[top:]
        for r in shown:
            keys = {k: ("(untagged)" if v is None and k == label else v) for k, v in r.keys.items()}
            out.append({**keys, "currency": currency, "cost": rounded(r.cost)})
        if rest:
            other = {k: None for k in rest[0].keys}
            other[label] = f"other ({len(rest)})"
            out.append({**other, "currency": currency, "cost": rounded(sum((r.cost for r in rest), Decimal(0)))})
    return out


def margin_row(m: TierMargin) -> dict[str, Any]:
    """A tier's margin as the documents carry it; with unpriced requests the cost is priced usage
    only and the margin an upper bound (`incomplete`), which the renderers print as "at most"."""
    return {"tier": m.tier, "users": m.users, "revenue_usd_month": rounded(m.revenue_usd_month),
            "llm_cost_usd_month": rounded(m.cost_usd_month), "margin_usd_month": rounded(m.margin_usd_month),
            "cost_per_user_month": rounded(m.cost_per_user_month), "requests": m.requests,
            "unpriced_requests": m.unpriced_requests, "incomplete": m.incomplete}


def build_report(billing: BillingSettings, now: datetime, *, since: datetime | None = None,
                 anomalies: bool = True) -> dict[str, Any]:
    """Every view as one JSON-able document; all heavy lifting is SQL aggregates in tools/.

    `since` replaces the `usage_window_days` window (`report --since DATE`); `anomalies=False`
    leaves out the spend-anomaly pass, which the audit's own sweep has already made.
    """
    from costwarden.policies.detectors.base import DetectContext, Price
    from costwarden.policies.detectors.spend_anomaly import SpendAnomaly, SpendAnomalyParams
    from costwarden.policies.economics import overrun_features, reconcile, tier_margins, unit_costs, unit_costs_by
    from costwarden.tools.billing.collect import collect_focus
    from costwarden.tools.billing.warehouse.export import open_export
    from costwarden.tools.collectors import CollectPlan, CollectReport, Scope
    from costwarden.tools.llm.collect import collect_llm_features, covered_days
    from costwarden.tools.llm.usage import UsageLog, open_usage
    from costwarden.tools.llm_prices import PriceMap

    doc: dict[str, Any] = {"generated_at": now.isoformat(), "cost_column": billing.cost_column, "warnings": []}
    naive_now = now.astimezone(timezone.utc).replace(tzinfo=None)
    window_start = naive_now - timedelta(days=billing.usage_window_days)
    if since is not None:
        window_start = since.astimezone(timezone.utc).replace(tzinfo=None)
    billed_by_provider: dict[str, Decimal] = {}
    if billing.has_bill:
        fx = open_export(billing, naive_now)  # local FOCUS files, or the warehouse table (billing.warehouse)
        doc["warnings"] += [f"focus: {w}" for w in fx.warnings]
        end = fx.data_end()
        if since is None and end is not None and end <= window_start:  # an old export: follow the data, loudly
            doc["warnings"].append(
                f"focus: no spend in the {billing.usage_window_days} days before {naive_now:%Y-%m-%d}; the export "
                f"ends on {(end - timedelta(days=1)):%Y-%m-%d}, so the {billing.usage_window_days} days up to it "
                f"are reported (--as-of DATE picks the period)")
            naive_now, window_start = end, end - timedelta(days=billing.usage_window_days)
        doc["window"] = {"start": window_start.isoformat(), "end": naive_now.isoformat()}
        doc["billing"] = {
            "files": len(fx.files), "rows": fx.row_count(),
            "total": {k: rounded(v) for k, v in fx.total(window_start, naive_now).items()},
            "by_service": top_with_other(fx.spend_by(["provider", "service"], window_start, naive_now),
                                         TOP_SERVICES, "service"),
            "by_team": top_with_other(fx.spend_by(["team"], window_start, naive_now), TOP_SERVICES, "team"),
            "unused_commitments": [{**r.keys, "currency": r.currency, "cost": rounded(r.cost)}
                                   for r in fx.unused_commitments(window_start, naive_now)],
            "unused_commitments_valued_in": "EffectiveCost",
        }
        billed_by_provider = {str(r.keys["provider"]): r.cost
                              for r in fx.spend_by(["provider"], window_start, naive_now)}
        if hasattr(fx, "ledger"):
            doc["warnings"].append(f"focus: {fx.ledger.summary()}")
        fx.close()
    if billing.has_usage:
        prices = PriceMap(billing.price_overrides)
        log = open_usage(billing)
        groups = log.groups(window_start, naive_now, prices=prices)
        days = covered_days(log, window_start, naive_now)
        unpriced = sorted({g.model for g in groups if g.cost_usd is None})
        doc["warnings"] += [f"model {m} has no price: its usage is reported as unpriced" for m in unpriced]
        revenue = billing.tier_revenue_usd_month
        doc["usage"] = {
            "window_days": days,
            "overall": unit_costs(groups).to_dict(),
            "by_feature": [u.to_dict() for u in unit_costs_by(groups, lambda g: g.feature)],
            "by_model": [u.to_dict() for u in unit_costs_by(groups, lambda g: g.model)],
            "by_tier": [u.to_dict() for u in unit_costs_by(groups, lambda g: g.tier)],
            "unpriced_models": unpriced,
            # users (distinct tenants) are HyperLogLog estimates (about 1.6% standard error) when a
            # source sent sketches for this window (LiteLLM cell-hours with more than 16 tenants)
            "users_estimated": log.users_estimated(window_start, naive_now),
            "tier_margins": [margin_row(m) for m in
                             tier_margins(groups, log.tier_users(window_start, naive_now), revenue, days)],
            "features_costing_more_than_the_tier_pays": [
                {"feature": o.feature, "tier": o.tier, "users": o.users,
                 "cost_per_user_month": rounded(o.cost_per_user_month), "tier_price_month": rounded(o.tier_price_month),
                 "requests": o.requests, "tokens": o.tokens}
                for o in overrun_features(groups, log.feature_tier_users(window_start, naive_now), revenue, days)],
        }
        computed: dict[str, Decimal] = {}
        for g in groups:
            if g.cost_usd is not None:
                computed[g.provider] = computed.get(g.provider, Decimal(0)) + g.cost_usd
        # FOCUS names providers its own way ("OpenAI"); match case-insensitively on the name
        billed = {p: sum((c for name, c in billed_by_provider.items() if p.lower() in name.lower()), Decimal(0))
                  for p in computed if any(p.lower() in name.lower() for name in billed_by_provider)}
        doc["reconciliation"] = [{"provider": r.provider, "computed_usd": rounded(r.computed_usd),
                                  "billed_usd": rounded(r.billed_usd), "difference_usd": rounded(r.difference_usd),
                                  "difference_pct": r.difference_pct} for r in reconcile(computed, billed)]
        log.close()
    if not anomalies:
        return doc
    anomalies_found: list[dict[str, Any]] = []
    detector = SpendAnomaly(SpendAnomalyParams())
    ctx = DetectContext(policy="report", run_id="report", now=now, price_of=lambda _r: Price(None, "n/a"))
    plan = CollectPlan(wants=lambda _r: True, metrics=[], lookback_hours=0, now=now)
    for collect in (collect_focus, collect_llm_features):
        rep = CollectReport()
        for obs in collect(billing, Scope(regions=[]), plan, rep):
            f = detector.detect(obs, ctx)
            if f is not None:
                anomalies_found.append({"resource_type": f.resource_type, "resource_id": f.resource_id,
                                        "summary": f.rationale, "monthly_impact_usd": rounded(f.monthly_waste_usd)})
        doc["warnings"] += rep.warnings + rep.errors
    doc["anomalies"] = anomalies_found
    return doc
