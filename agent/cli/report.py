"""`costwarden report`: spend by service, feature and model, unit costs, tier margins, the
reconciliation of token spend against the bill, and spend anomalies; in the terminal or as JSON.

Read-only: it reads the files named in the `billing:` config (or the demo's) and calls no cloud.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from costwarden.tools.billing.settings import BillingSettings


def _num(v: Decimal | float | None, places: int = 2) -> float | None:
    return None if v is None else round(float(v), places)


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
    from costwarden.tools.billing.focus import FocusExport
    from costwarden.tools.collectors import CollectPlan, CollectReport, Scope
    from costwarden.tools.llm.collect import collect_llm_features, covered_days
    from costwarden.tools.llm.usage import UsageLog
    from costwarden.tools.llm_prices import PriceMap

    doc: dict[str, Any] = {"generated_at": now.isoformat(), "cost_column": billing.cost_column, "warnings": []}
    naive_now = now.astimezone(timezone.utc).replace(tzinfo=None)
    window_start = naive_now - timedelta(days=billing.usage_window_days)
    if since is not None:
        window_start = since.astimezone(timezone.utc).replace(tzinfo=None)
    billed_by_provider: dict[str, Decimal] = {}
    if billing.focus_paths:
        fx = FocusExport(billing.focus_paths, cost_column=billing.cost_column, tag_map=billing.tag_map)
        doc["billing"] = {
            "files": len(fx.files), "rows": fx.row_count(),
            "total": {k: _num(v) for k, v in fx.total(window_start, naive_now).items()},
            "by_service": [{**r.keys, "currency": r.currency, "cost": _num(r.cost)}
                           for r in fx.spend_by(["provider", "service"], window_start, naive_now)[:15]],
            "by_team": [{**r.keys, "currency": r.currency, "cost": _num(r.cost)}
                        for r in fx.spend_by(["team"], window_start, naive_now)],
            "unused_commitments": [{**r.keys, "cost": _num(r.cost)} for r in fx.unused_commitments()],
        }
        billed_by_provider = {str(r.keys["provider"]): r.cost
                              for r in fx.spend_by(["provider"], window_start, naive_now)}
        fx.close()
    if billing.usage_paths:
        prices = PriceMap(billing.price_overrides)
        log = UsageLog(billing.usage_paths)
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
            "tier_margins": [{"tier": m.tier, "users": m.users, "revenue_usd_month": _num(m.revenue_usd_month),
                              "llm_cost_usd_month": _num(m.cost_usd_month),
                              "margin_usd_month": _num(m.margin_usd_month),
                              "cost_per_user_month": _num(m.cost_per_user_month)}
                             for m in tier_margins(groups, log.tier_users(window_start, naive_now), revenue, days)],
            "features_costing_more_than_the_tier_pays": [
                {"feature": o.feature, "tier": o.tier, "users": o.users,
                 "cost_per_user_month": _num(o.cost_per_user_month), "tier_price_month": _num(o.tier_price_month),
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
        doc["reconciliation"] = [{"provider": r.provider, "computed_usd": _num(r.computed_usd),
                                  "billed_usd": _num(r.billed_usd), "difference_usd": _num(r.difference_usd),
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
                                        "summary": f.rationale, "monthly_impact_usd": _num(f.monthly_waste_usd)})
        doc["warnings"] += rep.errors
    doc["anomalies"] = anomalies_found
    return doc


def render(doc: dict[str, Any], console: Console) -> None:
    def table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
        if not rows:
            return
        t = Table(title=title, title_justify="left")
        for c in cols:
            t.add_column(c, justify="right" if c not in ("provider", "service", "key", "tier", "feature", "team",
                                                          "resource_id", "summary", "detector", "decision",
                                                          "status", "resource", "action", "acted_at") else "left")
        for r in rows:
            t.add_row(*["-" if r.get(c) is None else (f"{r[c]:,}" if isinstance(r[c], (int, float)) else str(r[c]))
                        for c in cols])
        console.print(t)

    b = doc.get("billing")
    if b:
        console.print(f"[bold]Billing[/] ({b['files']} FOCUS files, {b['rows']:,} rows, {doc['cost_column']}): "
                      + ", ".join(f"{v:,.2f} {k}" for k, v in b["total"].items()))
        table("Spend by service", b["by_service"], ["provider", "service", "cost"])
        table("Spend by team (Tags)", b["by_team"], ["team", "cost"])
    u = doc.get("usage")
    if u:
        cols = ["key", "requests", "tokens", "cost_usd", "per_1m_tokens_usd", "per_1k_requests_usd",
                "per_success_usd", "unpriced_requests"]
        table(f"LLM unit costs by feature ({u['window_days']:g} days)", u["by_feature"], cols)
        table("LLM unit costs by model", u["by_model"], cols)
        table("Margin per tier (per month)", u["tier_margins"],
              ["tier", "users", "revenue_usd_month", "llm_cost_usd_month", "margin_usd_month", "cost_per_user_month"])
        table("Features costing more per user than the tier pays", u["features_costing_more_than_the_tier_pays"],
              ["feature", "tier", "users", "cost_per_user_month", "tier_price_month"])
        table("Token spend vs the bill", doc.get("reconciliation", []),
              ["provider", "computed_usd", "billed_usd", "difference_usd", "difference_pct"])
    table("Spend anomalies", doc.get("anomalies", []), ["resource_id", "summary", "monthly_impact_usd"])
    st = doc.get("store")
    if st:
        runs = st["runs"]
        console.print(f"[bold]Since {st['since']}[/]: {runs['total']} sweeps ("
                      + ", ".join(f"{k} {v}" for k, v in runs["by_status"].items()) + f"), "
                      f"{st['findings']['distinct']} distinct findings, monthly waste "
                      f"{st['findings']['monthly_waste_usd']:,.2f} USD")
        table("Findings by detector (distinct, latest of each)", st["findings"]["by_detector"],
              ["detector", "findings", "monthly_waste_usd"])
        table("Actions by decision and status", st["actions"]["by_decision_status"], ["decision", "status", "actions"])
        table("Executed actions: projected vs realized", st["savings"],
              ["resource", "action", "acted_at", "projected_monthly_usd", "realized_monthly_usd", "realized_usd",
               "hours_held"])
        t = st["totals"]
        console.print(f"Executed: projected {t['projected_monthly_usd']:,.2f} USD/month, realized "
                      + (f"{t['realized_monthly_usd']:,.2f}" if t["realized_monthly_usd"] is not None else "-")
                      + f" USD/month, {t['realized_to_date_usd']:,.2f} USD saved so far")
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def store_window(store: Any, since: datetime) -> dict[str, Any]:
    """What the store recorded since `since`, over every run in the window, not one.

    Sweeps repeat: the same idle GPU is found every hour. Findings are therefore counted once
    per fingerprint (the latest occurrence), so the window's waste is not the sum of its sweeps.
    """
    from collections import Counter

    w = store.window(since)
    latest: dict[str, Any] = {}
    for f in w["findings"]:  # oldest first: the last one wins
        latest[f.fingerprint] = f
    by_detector: dict[str, list[Any]] = {}
    for f in latest.values():
        by_detector.setdefault(f.detector, []).append(f)
    realized = {r.action_id: r for r in w["realized"]}
    savings = []
    for a in w["actions"]:
        if a.status != "done":
            continue
        m = realized.get(a.id)
        savings.append({"action_id": a.id, "resource": a.resource_key, "action": a.action,
                        "acted_at": a.updated_at.isoformat(timespec="minutes"),
                        "projected_monthly_usd": _num(a.projected_monthly_savings_usd),
                        "realized_monthly_usd": _num(m.realized_monthly_usd) if m else None,
                        "realized_usd": _num(m.realized_usd) if m else None,
                        "hours_held": _num(m.hours_held, 1) if m else None,
                        "billing_monthly_usd": _num(m.billing_monthly_usd) if m else None})
    measured = [s_ for s_ in savings if s_["realized_monthly_usd"] is not None]
    return {
        "since": since.isoformat(),
        "runs": {"total": len(w["runs"]), "by_status": dict(Counter(r.status for r in w["runs"])),
                 "live": sum(1 for r in w["runs"] if not r.dry_run)},
        "findings": {"rows": len(w["findings"]), "distinct": len(latest),
                     "monthly_waste_usd": _num(sum((f.monthly_waste_usd for f in latest.values()), Decimal(0))),
                     "by_detector": sorted(({"detector": d, "findings": len(fs),
                                             "monthly_waste_usd": _num(sum((f.monthly_waste_usd for f in fs), Decimal(0)))}
                                            for d, fs in by_detector.items()), key=lambda r: -(r["monthly_waste_usd"] or 0))},
        "actions": {"total": len(w["actions"]),
                    "by_decision_status": [{"decision": d, "status": st, "actions": n} for (d, st), n in
                                           sorted(Counter((a.decision, a.status) for a in w["actions"]).items())]},
        "savings": savings,
        "totals": {"projected_monthly_usd": round(sum(s_["projected_monthly_usd"] or 0 for s_ in savings), 2),
                   "realized_monthly_usd": round(sum(s_["realized_monthly_usd"] for s_ in measured), 2)
                   if measured else None,
                   "realized_to_date_usd": round(sum(s_["realized_usd"] or 0 for s_ in savings), 2)},
    }


def parse_since(value: str) -> datetime:
    """A date (`2026-11-01`, midnight UTC) or an ISO 8601 time; a naive time is UTC."""
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 time",
                                 param_hint="--since") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def report(config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.",
                                                           envvar="COSTWARDEN_CONFIG")] = None,
           demo: Annotated[bool, typer.Option("--demo", help="Report on the demo's FOCUS export and usage log.")] = False,
           fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
           since: Annotated[Optional[str], typer.Option(
               "--since", help="Also report runs, findings, actions and realized savings recorded since DATE "
                               "(YYYY-MM-DD or ISO 8601); the billing window starts there too.")] = None,
           measure: Annotated[bool, typer.Option(
               "--measure", help="With --since: first look at each executed action's resource again (read-only "
                                 "calls) and record its realized savings.")] = False,
           state_dir: Annotated[Optional[Path], typer.Option("--state-dir", help="Where the database lives.")] = None,
           ) -> None:
    """Spend by service, feature and model; unit costs; tier margins; reconciliation; anomalies."""
    from costwarden.agent.config import load_settings

    if fmt not in ("table", "json"):
        raise typer.BadParameter("use table or json", param_hint="--format")
    if measure and since is None:
        raise typer.BadParameter("--measure needs --since", param_hint="--measure")
    since_t = parse_since(since) if since is not None else None
    settings = load_settings(config, state_dir=state_dir)
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="costwarden-report-") as tmp:
        billing = settings.billing
        if demo:
            from costwarden.agent.demo.billing import write_demo_billing

            billing = BillingSettings.model_validate({**billing.model_dump(exclude_unset=True),
                                                      **write_demo_billing(Path(tmp), now=now)})
        if not billing.focus_paths and not billing.usage_paths and since_t is None:
            from costwarden.tools.errors import ToolError

            raise ToolError("nothing to report: set billing.focus_paths and/or billing.usage_paths (or use --demo)")
        doc = build_report(billing, now, since=since_t) if billing.focus_paths or billing.usage_paths else \
            {"generated_at": now.isoformat(), "warnings": []}
        if since_t is not None:
            from costwarden.state.store import Store

            store = Store(settings.db_url)
            try:
                if measure:
                    from costwarden.agent.engine.context import Providers
                    from costwarden.agent.engine.realized import refresh_realized

                    # dry-run clients: measuring reads the resources and can never change one
                    refresh_realized(store, Providers(settings, dry_run=True), now=now, billing=billing)
                doc["store"] = store_window(store, since_t)
            finally:
                store.close()
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        render(doc, Console(width=max(120, Console().width)))
