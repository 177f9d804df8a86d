"""Format an audit through the Jinja2 templates in templates/: HTML (autoescaped) and Markdown.

Why templates: the page's structure is read and changed as markup, not as Python string
building, and HTML autoescaping is on by default, so a tag value, a rationale written by a
model or a resource name cannot inject markup. The data comes from `build_sections`
(sections.py) and the charts from charts.py; nothing here reads a file, the store or a cloud.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from costwarden.agent.reports.sections import PROFILE_KEY
from costwarden.state.domain import Finding, PlannedAction

if TYPE_CHECKING:
    from jinja2 import Environment

    from costwarden.agent.engine.sweep import SweepResult

# (key, header, kind) with kind "" (text), "usd", "num", "cost" (usage cost, unpriced aware), "unit" (per-unit),
# "atmost" / "atleast" (an amount that unpriced requests make an upper / lower bound)
Column = tuple[str, str, str]
EVIDENCE_CHARS = 400  # an evidence value longer than this is cut in the page (the JSON keeps it whole)


def usd(v: Any, places: int = 2) -> str:
    """An amount as `-$1,234.56`; `-` when unknown (never a silent $0)."""
    if v is None:
        return "-"
    f = float(v)
    return f"{'-' if f < 0 else ''}${abs(f):,.{places}f}"


def dollars(v: Any) -> str:
    """The findings table's own form, `$1,234.56`, as the terminal table prints it."""
    return f"${v:,.2f}"


def num(v: Any) -> str:
    """A count with thousands separators; a small ratio with six significant digits."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1 else f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def unit_usd(v: Any) -> str:
    """A per-unit amount (per request, per interaction) with the places it needs: `$0.0492`,
    `$0.000123`, `$1.25`; `-` when unknown. Cents would print most unit costs as $0.00."""
    if v is None:
        return "-"
    f = float(v)
    if f == 0 or abs(f) >= 1:
        return usd(f)
    if abs(f) >= 0.01:
        return usd(f, 4)
    places = min(8, 2 - int(f"{abs(f):e}".split("e")[1]))  # three significant figures
    return f"{'-' if f < 0 else ''}${abs(f):.{places}f}"


def all_unpriced(row: dict[str, Any]) -> bool:
    """Every request of the row used a model with no known price: its $0 is unknown, not zero."""
    n = row.get("unpriced_requests") or 0
    return n > 0 and n >= (row.get("requests") or 0)


def cost_cell(row: dict[str, Any], key: str) -> str:
    """A usage row's cost: `unpriced (1,200 requests)` when nothing in it is priced, the priced
    amount plus `+ N unpriced requests` when part is, never a bare $0.00 for unknown prices."""
    n = row.get("unpriced_requests") or 0
    if all_unpriced(row):
        return f"unpriced ({n:,} requests)"
    text = usd(row.get(key))
    return f"{text} + {n:,} unpriced requests" if n else text


def unit_cell(row: dict[str, Any], key: str) -> str:
    """A usage row's per-unit cost: `unpriced` when nothing in it is priced."""
    return "unpriced" if all_unpriced(row) else unit_usd(row.get(key))


def bound_cell(row: dict[str, Any], key: str, bound: str) -> str:
    """An amount that unpriced requests make a bound: a margin is `at most $9,990.66, incomplete`
    (the unpriced requests cost something, so the true margin is lower), a cost per user `at least
    $1.87, incomplete`; a cost with nothing priced is `unpriced`, never $0.00."""
    text = usd(row.get(key))
    if not row.get("unpriced_requests") or row.get(key) is None:
        return text
    if bound == "at least" and all_unpriced(row):
        return "unpriced"
    return f"{bound} {text}, incomplete"


def cell(v: Any, kind: str, row: dict[str, Any] | None = None, key: str = "") -> str:
    """One table cell's text by the column's kind ("cost", "unit", "atmost" and "atleast" read the
    row's unpriced count)."""
    if kind in ("atmost", "atleast"):
        return bound_cell(row or {key: v}, key, "at most" if kind == "atmost" else "at least")
    if kind == "usd":
        return usd(v)
    if kind == "num":
        return num(v)
    if kind == "cost":
        return cost_cell(row or {key: v}, key)
    if kind == "unit":
        return unit_cell(row or {key: v}, key)
    return str("-" if v is None else v)


def md_cells(row: dict[str, Any], cols: list[Column]) -> list[str]:
    """A Markdown row's cells; a `|` in a value would split the cell, so it becomes `/`."""
    return [cell(row.get(key), kind, row, key).replace("|", "/") for key, _, kind in cols]


def negative(row: dict[str, Any], cols: list[Column]) -> bool:
    """Whether an amount in the row is below zero (a tier losing money, a credit): shown in red."""
    return any(isinstance(row.get(k), (int, float)) and row[k] < 0 for k, _, kind in cols
               if kind in ("usd", "cost", "unit", "atmost", "atleast"))


def evidence_items(ev: dict[str, Any]) -> list[tuple[str, str]]:
    """The evidence a reader expands under a finding: every key but the profile (charted) and the summary."""
    items = []
    for k, v in ev.items():
        if k in (PROFILE_KEY, "summary"):
            continue
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
        items.append((k, text[:EVIDENCE_CHARS]))
    return items


def coverage(x: dict[str, Any]) -> str:
    """An insufficient-data row's coverage against its threshold: `0% of 80%`."""
    return f"{float(x['coverage']):.0%} of {float(x['required_coverage']):.0%}"


def anomaly_marks(days: list[dict[str, Any]], anomalies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The daily spend rows with the days of a spend anomaly marked, for the Markdown table."""
    marked = {a["day"][:10] for a in anomalies}
    return [{**d, "anomaly": "**anomaly**" if d["day"] in marked else ""} for d in days]


@lru_cache(maxsize=1)
def environment() -> Environment:
    """One Jinja2 environment for both forms; autoescape follows the template's name (.html.j2 only)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("costwarden.agent.reports", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False,
                                                   default=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(usd=usd, dollars=dollars, num=num, md_cells=md_cells, evidence_items=evidence_items,
                       anomaly_marks=anomaly_marks, coverage=coverage, unit_usd=unit_usd, cell=cell)
    env.tests["negative_in"] = negative
    return env


def _with_actions(result: SweepResult) -> list[tuple[Finding, PlannedAction | None]]:
    """Each finding with its first planned action (a finding has at most one today)."""
    by_finding: dict[str, PlannedAction] = {}
    for a in result.actions:
        by_finding.setdefault(a.finding_id, a)
    return [(f, by_finding.get(f.id)) for f in result.findings]


def _charts(sections: dict[str, Any]) -> dict[str, Any]:
    """Every chart the page shows, as safe markup (matplotlib's SVG); None where there is nothing to draw."""
    from markupsafe import Markup

    from costwarden.agent.reports import charts

    daily = sections.get("daily_spend")
    savings = sections.get("savings") or []
    out: dict[str, Any] = {
        "daily_spend": Markup(charts.chart_daily_spend(daily, sections["anomalies"])) if daily and daily["days"] else None,
        "gpu_heatmap": Markup(charts.chart_gpu_heatmap(sections["gpu_utilization_by_hour"]))
        if sections["gpu_utilization_by_hour"] else None,
        "savings": Markup(charts.chart_savings(savings))
        if any(s["realized_monthly_usd"] is not None for s in savings) else None,
    }
    for label, title in (("detector", "By detector"), ("team", "By team")):
        rows = sections[f"waste_by_{label}"]
        out[f"waste_{label}"] = Markup(charts.chart_bars(rows, label, title, f"by-{label}")) \
            if any(r["monthly_waste_usd"] > 0 for r in rows) else None
    return out


def render_html(result: SweepResult, sections: dict[str, Any], *, version: str = "") -> str:
    """The whole report as one HTML document with inline CSS and inline SVG charts."""
    return environment().get_template("audit.html.j2").render(
        result=result, sections=sections, headline=sections["headline"], charts=_charts(sections),
        findings=_with_actions(result), version=version,
        notes=[(title, items) for title, items in (("Errors", result.errors),
                                                   ("Warnings", list(result.warnings) + sections.get("warnings", [])))
               if items])


def render_markdown(result: SweepResult, headline: str, sections: dict[str, Any] | None = None) -> str:
    """The audit as Markdown for a ticket: the findings table, then the report's sections when given."""
    return environment().get_template("audit.md.j2").render(
        result=result, headline=headline, findings=_with_actions(result), sections=sections)
