"""`costwarden report`: spend by service, feature and model, unit costs, tier margins, the
reconciliation of token spend against the bill, and spend anomalies; in the terminal or as JSON.

Read-only: it reads the files named in the `billing:` config (or the demo's) and calls no cloud.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table


_TEXT = ("provider", "service", "key", "tier", "feature", "team", "resource_id", "summary", "detector", "decision",
         "status", "resource", "action", "acted_at", "currency")
_MONEY_WORDS = ("usd", "cost", "price", "revenue", "margin")


def label(column: str) -> str:
    """A column's header for people: `per_1m_tokens_usd` is "per 1M tokens" (the currency is in the cell)."""
    text = column.removesuffix("_usd").replace("_usd_", "_").replace("_", " ")
    return text.replace("1m", "1M").replace(" pct", " %")


def cell(row: dict[str, Any], column: str) -> str:
    """One value for people: money with its currency, rounded to the cent (unit costs under $1 to four
    significant digits, so $0.000492 per request is not $0.00), percentages signed, counts grouped."""
    v = row.get(column)
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if column.endswith("_pct"):
        return f"{v:+.2f}%"
    if any(w in column for w in _MONEY_WORDS) and not column.endswith(("requests", "tokens", "users")):
        currency = str(row.get("currency") or "USD")
        amount = f"{abs(v):,.2f}" if v == 0 or abs(v) >= 1 else f"{abs(v):.4g}"
        sign = "-" if v < 0 else ""
        money = f"{sign}${amount}" if currency == "USD" else f"{sign}{amount} {currency}"
        return unpriced_aware(row, column, money)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.2f}"


def unpriced_aware(row: dict[str, Any], column: str, money: str) -> str:
    """Usage money where some requests have no price: the priced cost is a lower bound and a margin
    an upper one, and a cost with nothing priced is "unpriced", never $0.00 (as in the HTML report)."""
    n = row.get("unpriced_requests") or 0
    if not n or column in _PRICED_ELSEWHERE:
        return money
    if column.startswith("margin"):
        return f"at most {money}, incomplete"
    if n >= (row.get("requests") or 0):
        return f"unpriced ({n:,} requests)" if column in _USAGE_COSTS else "unpriced"
    if column.startswith("cost_per_user"):
        return f"at least {money}, incomplete"
    return f"{money} + {n:,} unpriced requests" if column in _USAGE_COSTS else money


_USAGE_COSTS = ("cost_usd", "llm_cost_usd_month")
_PRICED_ELSEWHERE = ("revenue_usd_month", "tier_price_month")  # the tier's price: known whatever the tokens


def render(doc: dict[str, Any], console: Console) -> None:
    """The report document (agent/reports/spend.py, window.py) as rich tables in the terminal."""
    def table(title: str, rows: list[dict[str, Any]], cols: list[str]) -> None:
        if not rows:
            return
        t = Table(title=title, title_justify="left")
        for c in cols:
            text = c in _TEXT
            # a header is never cut: numbers keep their width, text columns wrap instead
            t.add_column(label(c), justify="left" if text else "right", min_width=None if text else len(label(c)),
                         no_wrap=not text, overflow="fold")
        for r in rows:
            t.add_row(*[cell(r, c) for c in cols])
        console.print(t)

    b = doc.get("billing")
    if b:
        w = doc.get("window") or {}
        span = f", {w['start'][:10]} to {w['end'][:10]}" if w else ""
        console.print(f"[bold]Billing[/] ({b['files']} FOCUS files, {'?' if b['rows'] is None else format(b['rows'], ',')} rows, {doc['cost_column']}{span}): "
                      + ", ".join(f"{v:,.2f} {k}" for k, v in b["total"].items()))
        table("Spend by service", b["by_service"], ["provider", "service", "cost"])
        table("Spend by team (Tags)", b["by_team"], ["team", "cost"])
        table("Unused commitments (EffectiveCost, inside the total)", b.get("unused_commitments", []),
              ["provider", "service", "cost"])
    u = doc.get("usage")
    if u:
        cols = ["key", "requests", "tokens", "cost_usd", "per_1m_tokens_usd", "per_1k_requests_usd",
                "per_success_usd", "unpriced_requests"]
        table(f"LLM unit costs by feature ({u['window_days']:g} days)", u["by_feature"], cols)
        table("LLM unit costs by model", u["by_model"], cols)
        if u.get("users_estimated") and (u["tier_margins"] or u["features_costing_more_than_the_tier_pays"]):
            from costwarden.agent.reports.spend import USERS_ESTIMATED

            console.print(USERS_ESTIMATED)
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


def parse_since(value: str) -> datetime:
    """A date (`2026-11-01`, midnight UTC) or an ISO 8601 time; a naive time is UTC."""
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 time",
                                 param_hint="--since") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_as_of(value: str | None) -> datetime | None:
    """`--as-of DATE`: analyse as if it were midnight after DATE (UTC), so DATE is the last complete day
    and a closed month (`--as-of 2025-03-31`) is judged whole."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--as-of") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1)


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
           as_of: Annotated[Optional[str], typer.Option(
               "--as-of", help="Report as of the end of DATE (YYYY-MM-DD, UTC): any closed period.")] = None,
           ) -> None:
    """Spend by service, feature and model; unit costs; tier margins; reconciliation; anomalies."""
    from costwarden.agent.config import load_settings
    from costwarden.agent.reports.spend import build_report

    if fmt not in ("table", "json"):
        raise typer.BadParameter("use table or json", param_hint="--format")
    if measure and since is None:
        raise typer.BadParameter("--measure needs --since", param_hint="--measure")
    since_t = parse_since(since) if since is not None else None
    settings = load_settings(config, state_dir=state_dir)
    now = parse_as_of(as_of) or datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="costwarden-report-") as tmp:
        billing = settings.billing
        if demo:
            from costwarden.agent.cli.demo import demo_billing

            billing = demo_billing(billing, Path(tmp), now)
        if not billing.has_bill and not billing.has_usage and since_t is None:
            from costwarden.tools.errors import ToolError

            raise ToolError("nothing to report: set billing.focus_paths and/or billing.usage_paths (or use --demo)")
        doc = build_report(billing, now, since=since_t) if billing.has_bill or billing.has_usage else \
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
                from costwarden.agent.reports.window import store_window

                doc["store"] = store_window(store, since_t)
            finally:
                store.close()
    if fmt == "json":
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        render(doc, Console(width=max(120, Console().width)))
