"""The audit as a document people forward: one self-contained HTML file, plus the same sections
for the Markdown and JSON forms.

Why one file with everything inline: an audit is mailed to a finance lead, attached to a ticket
or opened on a laptop with no network. So the CSS is inline, the charts are SVG drawn by
matplotlib (Agg/SVG, no display, no JavaScript) and embedded in the page, and nothing is fetched
when the file is opened.

`build_sections` gathers the figures once (from the sweep, the billing files and the store);
`render_html` and `render_markdown_sections` only format them, and the JSON form carries the
same dictionary under `report`.
"""

from __future__ import annotations

import html
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from costwarden.agent.engine.sweep import SweepResult
from costwarden.state.domain import Finding, PlannedAction

PROFILE_KEY = "gpu_util_by_hour_utc_pct"  # set by the idle-gpu detector (24 hourly means)
_CHART_TEXT = "#1f2933"
_ACCENT, _RED, _MUTED = "#2563eb", "#dc2626", "#9aa5b1"


def require_charts() -> None:
    """Fail before a sweep, not after it, when the charting library is missing."""
    import importlib.util

    from costwarden.tools.errors import ToolError

    if importlib.util.find_spec("matplotlib") is None:
        raise ToolError("--format html needs matplotlib, which is not installed: pip install 'costwarden[report]'")


# --- gathering ----------------------------------------------------------------------------------
def _tag(tags: dict[str, str], keys: Iterable[str]) -> str | None:
    return next((tags[k] for k in keys if tags.get(k)), None)


def _waste_by(findings: list[Finding], key: Any, label: str) -> list[dict[str, Any]]:
    cells: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        k = key(f)
        if k is not None:
            cells[k].append(f)
    rows = [{label: k, "findings": len(fs), "monthly_waste_usd": float(sum((f.monthly_waste_usd for f in fs), Decimal(0)))}
            for k, fs in cells.items()]
    return sorted(rows, key=lambda r: (-r["monthly_waste_usd"], str(r[label])))


def _daily_spend(billing: Any, now: datetime) -> dict[str, Any] | None:
    """Total daily spend over the lookback window, in the export's main currency, complete days only
    (today's rows are still arriving, and a half day would look like a drop)."""
    from costwarden.tools.billing.focus import FocusExport

    today = now.astimezone(timezone.utc).date()
    fx = FocusExport(billing.focus_paths, cost_column=billing.cost_column, tag_map=billing.tag_map)
    try:
        rows = fx.daily_spend([], today - timedelta(days=billing.lookback_days), today)
    finally:
        fx.close()
    by_currency: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for r in rows:
        if r.day is not None:
            by_currency[r.currency].append((r.day, r.cost))
    if not by_currency:
        return None
    currency = max(by_currency, key=lambda c: sum(abs(v) for _, v in by_currency[c]))
    return {"currency": currency, "days": [{"day": d.isoformat(), "cost": round(float(c), 2)}
                                           for d, c in sorted(by_currency[currency])]}


def _savings(store: Any) -> list[dict[str, Any]]:
    rows = []
    for action, finding, acted_at in store.executed_actions():
        m = store.get_realized(action.id)
        rows.append({"action_id": action.id, "resource": action.resource_key, "action": action.action,
                     "acted_at": acted_at.isoformat(timespec="minutes"),
                     "projected_monthly_usd": float(action.projected_monthly_savings_usd),
                     "realized_monthly_usd": None if m is None or m.realized_monthly_usd is None
                     else float(m.realized_monthly_usd),
                     "realized_usd": None if m is None else float(m.realized_usd),
                     "hours_held": None if m is None else round(float(m.hours_held), 1),
                     "hours_observed": None if m is None else round(float(m.hours_observed), 1),
                     "billing_monthly_usd": None if m is None or m.billing_monthly_usd is None
                     else float(m.billing_monthly_usd)})
    return rows


def build_sections(result: SweepResult, billing: Any = None, *, now: datetime | None = None,
                   store: Any = None) -> dict[str, Any]:
    """Everything the report shows beyond the JSON contract, as one JSON-able dictionary.

    A billing file that cannot be read becomes a warning here: the audit itself has already
    reported it, and the rest of the document is still worth having.
    """
    now = now or datetime.now(timezone.utc)
    tag_map = getattr(billing, "tag_map", None) or {"team": ["team", "owner"], "feature": ["feature", "app"]}
    findings = list(result.findings)
    decisions = Counter(a.decision for a in result.actions)
    sections: dict[str, Any] = {
        "generated_at": now.isoformat(timespec="seconds"),
        "headline": {"monthly_waste_usd": float(result.monthly_waste_usd),
                     "projected_monthly_savings_usd": float(result.projected_monthly_savings_usd),
                     "findings": len(findings), "actions": len(result.actions),
                     "actions_by_decision": dict(sorted(decisions.items()))},
        "waste_by_detector": _waste_by(findings, lambda f: f.detector, "detector"),
        "waste_by_team": _waste_by(findings, lambda f: _tag(f.tags, tag_map.get("team", ["team"])) or "unassigned",
                                   "team"),
        "waste_by_feature": _waste_by(findings, lambda f: _tag(f.tags, tag_map.get("feature", ["feature"])),
                                      "feature"),
        "daily_spend": None, "anomalies": [], "gpu_utilization_by_hour": [], "economics": None,
        "savings": [], "warnings": [],
    }
    for f in findings:
        ev = f.evidence or {}
        if f.detector == "spend-anomaly" and ev.get("day"):
            sections["anomalies"].append({
                "day": str(ev["day"]), "resource_type": f.resource_type, "resource_id": f.resource_id,
                "spend_usd": ev.get("spend_usd"), "expected_usd": ev.get("expected_usd"),
                "monthly_impact_usd": float(f.monthly_waste_usd), "summary": ev.get("summary") or f.rationale})
        if isinstance(ev.get(PROFILE_KEY), list) and len(ev[PROFILE_KEY]) == 24:
            sections["gpu_utilization_by_hour"].append({
                "resource_id": f.resource_id, "name": f.tags.get("Name", ""), "resource_type": f.resource_type,
                "instance_type": ev.get("instance_type", ""), "profile": ev[PROFILE_KEY]})
    if billing is not None and (billing.focus_paths or billing.usage_paths):
        from costwarden.agent.cli.report import build_report
        from costwarden.tools.errors import ToolError

        try:
            if billing.focus_paths:
                sections["daily_spend"] = _daily_spend(billing, now)
            doc = build_report(billing, now, anomalies=False)
        except ToolError as exc:
            sections["warnings"].append(f"billing: {exc}")
        else:
            u = doc.get("usage") or {}
            sections["economics"] = {
                "window_days": u.get("window_days"), "overall": u.get("overall"),
                "by_feature": u.get("by_feature", []), "by_tier": u.get("by_tier", []),
                "tier_margins": u.get("tier_margins", []),
                "overruns": u.get("features_costing_more_than_the_tier_pays", []),
                "reconciliation": doc.get("reconciliation", []),
                "spend_by_team": (doc.get("billing") or {}).get("by_team", []),
            } if u or doc.get("billing") else None
            sections["warnings"] += doc.get("warnings", [])
    if store is not None:
        sections["savings"] = _savings(store)
        measured = [s for s in sections["savings"] if s["realized_monthly_usd"] is not None]
        sections["headline"]["executed_projected_monthly_usd"] = round(
            sum(s["projected_monthly_usd"] for s in sections["savings"]), 2)
        sections["headline"]["realized_monthly_usd"] = round(sum(s["realized_monthly_usd"] for s in measured), 2) \
            if measured else None
    return sections


# --- charts -------------------------------------------------------------------------------------
def _svg(fig: Any, salt: str, label: str) -> str:
    """One figure as inline SVG: text kept as text, deterministic ids, nothing external."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "Costwarden"}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" class="chart-svg" ', 1)


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)  # never a display, even when a GUI backend is installed
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.patch.set_alpha(0)
    return fig


def _style(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=_CHART_TEXT, labelsize=9)
    ax.yaxis.label.set_color(_CHART_TEXT)


def chart_daily_spend(daily: dict[str, Any], anomalies: list[dict[str, Any]]) -> str:
    """Daily spend, with the days of spend anomalies marked in red."""
    days = [date.fromisoformat(d["day"]) for d in daily["days"]]
    costs = [d["cost"] for d in daily["days"]]
    fig = _figure(10, 3.2)
    ax = fig.add_subplot()
    ax.plot(days, costs, color=_ACCENT, linewidth=2, marker="o", markersize=3)
    ax.fill_between(days, costs, color=_ACCENT, alpha=0.08)
    by_day = dict(zip(days, costs))
    marked = sorted({date.fromisoformat(a["day"][:10]) for a in anomalies} & set(by_day))
    if marked:
        ax.scatter(marked, [by_day[d] for d in marked], s=90, color=_RED, zorder=5, label="spend anomaly")
        for d in marked:
            names = ", ".join(sorted({a["resource_id"].split("/")[-1] for a in anomalies if a["day"][:10] == d.isoformat()}))
            ax.annotate(names, (d, by_day[d]), textcoords="offset points", xytext=(-8, 10), ha="right",
                        fontsize=8, color=_RED)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.set_ylabel(f"{daily['currency']} per day")
    ax.set_ylim(bottom=min(0, min(costs)))
    fig.autofmt_xdate()
    _style(ax)
    return _svg(fig, "daily-spend", "Daily spend with anomalies marked")


def chart_bars(rows: list[dict[str, Any]], label: str, title: str, salt: str) -> str:
    """Monthly waste per category, largest on top."""
    rows = [r for r in rows if r["monthly_waste_usd"] > 0][:12]
    fig = _figure(5, 0.45 * max(len(rows), 2) + 0.8)
    ax = fig.add_subplot()
    names = [str(r[label]) for r in rows][::-1]
    values = [r["monthly_waste_usd"] for r in rows][::-1]
    bars = ax.barh(names, values, color=_ACCENT)
    ax.bar_label(bars, labels=[f"${v:,.0f}" for v in values], padding=3, fontsize=8, color=_CHART_TEXT)
    ax.set_title(title, fontsize=10, color=_CHART_TEXT, loc="left")
    ax.set_xlim(0, max(values, default=1) * 1.25)
    ax.xaxis.set_visible(False)
    ax.spines["bottom"].set_visible(False)
    _style(ax)
    return _svg(fig, salt, title)


def chart_gpu_heatmap(rows: list[dict[str, Any]]) -> str:
    """GPU utilization per resource (rows) and UTC hour of day (columns), 0-100 %."""
    import numpy as np

    fig = _figure(10, 0.5 * len(rows) + 1.4)
    ax = fig.add_subplot()
    grid = np.array([[np.nan if v is None else v for v in r["profile"]] for r in rows], dtype=float)
    im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=100, interpolation="nearest")
    ax.set_yticks(range(len(rows)), [(r["name"] or r["resource_id"])[:40] for r in rows])
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour of day (UTC)", color=_CHART_TEXT)
    for i, r in enumerate(rows):
        vals = [v for v in r["profile"] if v is not None]
        if vals:
            ax.text(23.6, i, f" mean {sum(vals) / len(vals):.1f}%", va="center", ha="left", fontsize=8,
                    color=_CHART_TEXT)
    cbar = fig.colorbar(im, ax=ax, pad=0.12)
    cbar.set_label("GPU utilization %", color=_CHART_TEXT)
    _style(ax)
    return _svg(fig, "gpu-heatmap", "GPU utilization heatmap, resource by hour of day")


def chart_savings(rows: list[dict[str, Any]]) -> str:
    """Projected against realized monthly savings, per executed action."""
    import numpy as np

    rows = rows[:15]
    fig = _figure(10, 0.45 * len(rows) + 1.2)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r["projected_monthly_usd"] for r in rows], height=0.4, color=_MUTED, label="projected")
    ax.barh(y + 0.2, [r["realized_monthly_usd"] or 0 for r in rows], height=0.4, color=_ACCENT, label="realized")
    ax.set_yticks(y, [r["resource"].rsplit(":", 1)[-1][:40] for r in rows])
    ax.invert_yaxis()
    ax.legend(frameon=False, fontsize=8)
    ax.set_xlabel("USD per month", color=_CHART_TEXT)
    _style(ax)
    return _svg(fig, "savings", "Projected versus realized monthly savings")


# --- HTML ---------------------------------------------------------------------------------------
_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--accent:#2563eb;--red:#dc2626;--green:#15803d}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg)}main{max-width:1180px;margin:0 auto;padding:28px 24px 48px}
header h1{margin:0;font-size:26px}header p{margin:4px 0 0;color:var(--muted)}
h2{font-size:18px;margin:0 0 12px}section{background:#fff;border:1px solid var(--line);border-radius:10px;
padding:18px 20px;margin:18px 0}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;
background:none;border:0;padding:0}.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}.card .v{font-size:26px;
font-weight:650;margin-top:4px}.card .v.red{color:var(--red)}.card .v.green{color:var(--green)}
.chips span{display:inline-block;margin:6px 6px 0 0;padding:2px 8px;border-radius:999px;background:#eef2ff;font-size:12px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}@media(max-width:900px){.grid2{grid-template-columns:1fr}}
figure{margin:0}figure svg{max-width:100%;height:auto}figcaption{color:var(--muted);font-size:12px;margin-top:4px}
table{border-collapse:collapse;width:100%;margin:8px 0 4px;font-size:13px}th,td{border-bottom:1px solid var(--line);
padding:6px 8px;text-align:left;vertical-align:top}th{background:#f3f4f6;font-weight:600}td.n,th.n{text-align:right;
white-space:nowrap;font-variant-numeric:tabular-nums}tr.neg td.n.m{color:var(--red)}
.sev{font-size:11px;padding:1px 6px;border-radius:4px;color:#fff}.sev.critical{background:#b91c1c}
.sev.high{background:#ea580c}.sev.medium{background:#ca8a04}.sev.low{background:#64748b}
details summary{cursor:pointer;color:var(--accent)}dl.ev{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;
margin:6px 0;font-size:12px}dl.ev dt{color:var(--muted)}dl.ev dd{margin:0;word-break:break-word}
.empty{color:var(--muted);font-style:italic}ul.notes li{color:var(--muted)}footer{color:var(--muted);font-size:12px}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _usd(v: Any, places: int = 2) -> str:
    if v is None:
        return "-"
    f = float(v)
    return f"{'-' if f < 0 else ''}${abs(f):,.{places}f}"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1 else f"{v:,.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _table(table_id: str, cols: list[tuple[str, str, str]], rows: list[dict[str, Any]], empty: str) -> str:
    """cols: (key, header, kind) with kind '' (text), 'usd', 'num'."""
    if not rows:
        return f'<p class="empty" id="{table_id}-empty">{_e(empty)}</p>'
    head = "".join(f'<th class="{"n" if k else ""}">{_e(h)}</th>' for _, h, k in cols)
    body = []
    for r in rows:
        cells = []
        for key, _, kind in cols:
            v = r.get(key)
            if kind == "usd":
                cells.append(f'<td class="n m">{_e(_usd(v))}</td>')
            elif kind == "num":
                cells.append(f'<td class="n">{_e(_num(v))}</td>')
            else:
                cells.append(f"<td>{_e('-' if v is None else v)}</td>")
        neg = any(isinstance(r.get(k), (int, float)) and r[k] < 0 for k, _, kind in cols if kind == "usd")
        body.append(f'<tr class="{"neg" if neg else ""}">{"".join(cells)}</tr>')
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _evidence(ev: dict[str, Any]) -> str:
    items = []
    for k, v in ev.items():
        if k in (PROFILE_KEY, "summary"):
            continue
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
        items.append(f"<dt>{_e(k)}</dt><dd>{_e(text[:400])}</dd>")
    return f'<details><summary>evidence</summary><dl class="ev">{"".join(items)}</dl></details>' if items else ""


def _findings_table(result: SweepResult) -> str:
    by_finding: dict[str, PlannedAction] = {}
    for a in result.actions:
        by_finding.setdefault(a.finding_id, a)
    if not result.findings:
        return '<p class="empty" id="table-findings-empty">No waste found.</p>'
    rows = []
    for f in result.findings:
        a = by_finding.get(f.id)
        name = f.tags.get("Name")
        resource = f"<code>{_e(f.resource_id)}</code>" + (f"<br>{_e(name)}" if name else "")
        action = (f"<code>{_e(a.action)}</code><br>{_e(a.decision)} ({_e(a.status)})<br>"
                  f"<small>{_e(a.reason)}</small>") if a else "report"
        rows.append(
            f"<tr><td>{resource}<br><small>{_e(f.resource_type)} · {_e(f.account)}/{_e(f.region)}</small></td>"
            f"<td>{_e(f.detector)}<br><span class=\"sev {_e(f.severity)}\">{_e(f.severity)}</span></td>"
            f'<td class="n">{_e(_usd(f.monthly_waste_usd))}</td>'
            f"<td>{_e(f.rationale or f.detector)}{_evidence(f.evidence or {})}</td><td>{action}</td></tr>")
    return ('<table id="table-findings"><thead><tr><th>Resource</th><th>Detector</th><th class="n">Monthly waste</th>'
            f'<th>Why (evidence)</th><th>Proposed action</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def render_html(result: SweepResult, sections: dict[str, Any], *, version: str = "") -> str:
    """The whole report as one HTML document with inline CSS and inline SVG charts."""
    h = sections["headline"]
    mode = "Dry-run audit: nothing was changed" if result.dry_run else "Live sweep"
    chips = "".join(f"<span>{_e(d)}: {n}</span>" for d, n in h["actions_by_decision"].items()) or "<span>none</span>"
    realized = h.get("realized_monthly_usd")
    cards = [
        ("Monthly waste found", _usd(h["monthly_waste_usd"]), "red", f'{h["findings"]} findings'),
        ("Projected savings", _usd(h["projected_monthly_savings_usd"]) + "/mo", "green",
         f'{h["actions"]} proposed actions'),
    ]
    if h.get("executed_projected_monthly_usd"):
        cards.append(("Realized savings", (_usd(realized) + "/mo") if realized is not None else "not measured yet",
                      "green", f'projected {_usd(h["executed_projected_monthly_usd"])}/mo for executed actions'))
    card_html = "".join(f'<div class="card"><div class="k">{_e(k)}</div><div class="v {c}">{_e(v)}</div>'
                        f'<div class="k" style="text-transform:none">{_e(sub)}</div></div>' for k, v, c, sub in cards)
    card_html += f'<div class="card"><div class="k">Actions by decision</div><div class="chips">{chips}</div></div>'
    parts = [f'<header><h1>Costwarden audit</h1><p>{_e(mode)} · run <code>{_e(result.run_id)}</code> · '
             f'{result.inventoried} resources inventoried · generated {_e(sections["generated_at"])}</p></header>',
             f'<section id="headline" class="cards">{card_html}</section>']

    daily = sections.get("daily_spend")
    spend = ['<section id="spend"><h2>Daily spend</h2>']
    if daily and daily["days"]:
        spend.append(f'<figure id="chart-daily-spend">{chart_daily_spend(daily, sections["anomalies"])}'
                     f'<figcaption>Total spend per UTC day from the FOCUS exports ({_e(daily["currency"])}); '
                     f'red: days with a spend anomaly.</figcaption></figure>')
    else:
        spend.append('<p class="empty">No FOCUS billing export configured (billing.focus_paths).</p>')
    spend.append("<h3>Spend anomalies</h3>" + _table("table-anomalies", [
        ("day", "Day", ""), ("resource_id", "What", ""), ("spend_usd", "Spent", "usd"),
        ("expected_usd", "Expected", "usd"), ("monthly_impact_usd", "Monthly impact", "usd"), ("summary", "Why", "")],
        sections["anomalies"], "No spend anomaly."))
    parts.append("".join(spend) + "</section>")

    waste = ['<section id="waste"><h2>Waste by detector, team and feature</h2><div class="grid2">']
    for key, title, salt in (("waste_by_detector", "By detector", "by-detector"), ("waste_by_team", "By team", "by-team")):
        label = key.rsplit("_", 1)[-1]
        rows = sections[key]
        chart = (f'<figure id="chart-waste-{label}">{chart_bars(rows, label, title, salt)}</figure>'
                 if any(r["monthly_waste_usd"] > 0 for r in rows) else "")
        waste.append(f"<div>{chart}" + _table(f"table-waste-{label}", [
            (label, label.capitalize(), ""), ("findings", "Findings", "num"),
            ("monthly_waste_usd", "Monthly waste", "usd")], rows, "No findings.") + "</div>")
    waste.append("</div><h3>By feature (LLM)</h3>" + _table("table-waste-feature", [
        ("feature", "Feature", ""), ("findings", "Findings", "num"), ("monthly_waste_usd", "Monthly waste", "usd")],
        sections["waste_by_feature"], "No LLM feature findings."))
    parts.append("".join(waste) + "</section>")

    gpu = sections["gpu_utilization_by_hour"]
    parts.append('<section id="gpu"><h2>GPU utilization by hour of day</h2>' + (
        f'<figure id="chart-gpu-heatmap">{chart_gpu_heatmap(gpu)}<figcaption>Mean GPU utilization per UTC hour '
        f'over the detector\'s lookback, for the GPUs found idle (from the idle-gpu evidence).</figcaption></figure>'
        if gpu else '<p class="empty">No GPU utilization series in this sweep.</p>') + "</section>")

    econ = sections.get("economics")
    e = ['<section id="economics"><h2>Unit economics</h2>']
    if econ:
        overall = econ.get("overall") or {}
        if overall:
            e.append(f'<p>Over {_e(econ.get("window_days"))} days: {_e(_num(overall.get("requests")))} LLM requests, '
                     f'{_e(_usd(overall.get("cost_usd")))} priced token spend, '
                     f'{_e(_usd(overall.get("per_1m_tokens_usd")))} per 1M tokens, '
                     f'{_e(_usd(overall.get("per_success_usd"), 4))} per successful interaction.</p>')
        unit_cols = [("key", "Feature", ""), ("requests", "Requests", "num"), ("tokens", "Tokens", "num"),
                     ("cost_usd", "Cost", "usd"), ("per_1m_tokens_usd", "Per 1M tokens", "usd"),
                     ("per_success_usd", "Per successful interaction", "num"),
                     ("unpriced_requests", "Unpriced requests", "num")]
        e.append("<h3>Cost per feature</h3>" + _table("table-unit-costs", unit_cols, econ["by_feature"],
                                                      "No token usage."))
        e.append("<h3>Margin per tier (per month)</h3>" + _table("table-tier-margins", [
            ("tier", "Tier", ""), ("users", "Users", "num"), ("revenue_usd_month", "Revenue", "usd"),
            ("llm_cost_usd_month", "LLM cost", "usd"), ("margin_usd_month", "Margin", "usd"),
            ("cost_per_user_month", "Cost per user", "usd")], econ["tier_margins"],
            "No tiers (billing.tier_revenue_usd_month)."))
        if econ["overruns"]:
            e.append("<h3>Features costing more per user than the tier pays</h3>" + _table("table-overruns", [
                ("feature", "Feature", ""), ("tier", "Tier", ""), ("users", "Users", "num"),
                ("cost_per_user_month", "Cost per user/month", "usd"),
                ("tier_price_month", "Tier price/month", "usd")], econ["overruns"], ""))
        if econ["reconciliation"]:
            e.append("<h3>Token spend vs the bill</h3>" + _table("table-reconciliation", [
                ("provider", "Provider", ""), ("computed_usd", "Computed", "usd"), ("billed_usd", "Billed", "usd"),
                ("difference_usd", "Difference", "usd"), ("difference_pct", "Difference %", "num")],
                econ["reconciliation"], ""))
    else:
        e.append('<p class="empty">No token-usage logs configured (billing.usage_paths).</p>')
    parts.append("".join(e) + "</section>")

    savings = sections.get("savings") or []
    if savings:
        chart = (f'<figure id="chart-savings">{chart_savings(savings)}</figure>'
                 if any(s["realized_monthly_usd"] is not None for s in savings) else "")
        parts.append('<section id="savings"><h2>Projected vs realized savings</h2>' + chart + _table(
            "table-savings", [("resource", "Resource", ""), ("action", "Action", ""), ("acted_at", "Done at", ""),
                              ("projected_monthly_usd", "Projected/month", "usd"),
                              ("realized_monthly_usd", "Realized/month", "usd"), ("realized_usd", "Saved so far", "usd"),
                              ("hours_held", "Hours held", "num"), ("hours_observed", "Hours observed", "num"),
                              ("billing_monthly_usd", "From billing/month", "usd")], savings, "") + "</section>")

    parts.append(f'<section id="findings"><h2>Findings</h2>{_findings_table(result)}</section>')
    notes = [("Errors", result.errors), ("Warnings", list(result.warnings) + sections.get("warnings", []))]
    note_html = "".join(f"<h3>{t}</h3><ul class=\"notes\">{''.join(f'<li>{_e(i)}</li>' for i in items)}</ul>"
                        for t, items in notes if items)
    if note_html:
        parts.append(f'<section id="notes">{note_html}</section>')
    parts.append(f"<footer>Costwarden {_e(version)} · a self-contained file: no script, no network.</footer>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Costwarden audit {_e(result.run_id)}</title><style>{_CSS}</style></head>"
            f'<body><main>{"".join(parts)}</main></body></html>\n')


# --- Markdown -----------------------------------------------------------------------------------
def _md_table(cols: list[tuple[str, str, str]], rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["_none_"]
    out = ["| " + " | ".join(h for _, h, _ in cols) + " |",
           "|" + "|".join("---:" if k else "---" for _, _, k in cols) + "|"]
    for r in rows:
        cells = []
        for key, _, kind in cols:
            v = r.get(key)
            cells.append(_usd(v) if kind == "usd" else _num(v) if kind == "num" else str("-" if v is None else v))
        out.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return out


def render_markdown_sections(sections: dict[str, Any]) -> str:
    """The report's sections as Markdown, appended to the audit's findings table."""
    h = sections["headline"]
    lines = ["", "## Headline", "",
             f"- Monthly waste found: **{_usd(h['monthly_waste_usd'])}** in {h['findings']} findings",
             f"- Projected savings: **{_usd(h['projected_monthly_savings_usd'])}/month** from {h['actions']} actions",
             "- Actions by decision: " + (", ".join(f"{d} {n}" for d, n in h["actions_by_decision"].items()) or "none")]
    if h.get("executed_projected_monthly_usd"):
        lines.append(f"- Executed actions: projected {_usd(h['executed_projected_monthly_usd'])}/month, realized "
                     f"{_usd(h.get('realized_monthly_usd'))}/month")
    for title, key, label in (("Waste by detector", "waste_by_detector", "detector"),
                              ("Waste by team", "waste_by_team", "team"), ("Waste by feature", "waste_by_feature", "feature")):
        lines += ["", f"## {title}", ""] + _md_table([(label, label.capitalize(), ""), ("findings", "Findings", "num"),
                                                      ("monthly_waste_usd", "Monthly waste", "usd")], sections[key])
    daily = sections.get("daily_spend")
    if daily:
        lines += ["", f"## Daily spend ({daily['currency']})", ""]
        marked = {a["day"][:10] for a in sections["anomalies"]}
        lines += _md_table([("day", "Day", ""), ("cost", "Spend", "usd"), ("anomaly", "Anomaly", "")],
                           [{**d, "anomaly": "**anomaly**" if d["day"] in marked else ""} for d in daily["days"]])
    lines += ["", "## Spend anomalies", ""] + _md_table(
        [("day", "Day", ""), ("resource_id", "What", ""), ("monthly_impact_usd", "Monthly impact", "usd"),
         ("summary", "Why", "")], sections["anomalies"])
    if sections["gpu_utilization_by_hour"]:
        lines += ["", "## GPU utilization by hour of day (UTC, %)", "",
                  "| Resource | " + " | ".join(f"{x:02d}" for x in range(24)) + " |", "|---|" + "---:|" * 24]
        for r in sections["gpu_utilization_by_hour"]:
            vals = " | ".join("-" if v is None else f"{v:.0f}" for v in r["profile"])
            lines.append(f"| {r['name'] or r['resource_id']} | {vals} |")
    econ = sections.get("economics")
    if econ:
        lines += ["", "## Unit economics", ""] + _md_table(
            [("key", "Feature", ""), ("requests", "Requests", "num"), ("cost_usd", "Cost", "usd"),
             ("per_1m_tokens_usd", "Per 1M tokens", "usd"), ("per_success_usd", "Per successful interaction", "num")],
            econ["by_feature"])
        lines += ["", "### Margin per tier (per month)", ""] + _md_table(
            [("tier", "Tier", ""), ("users", "Users", "num"), ("revenue_usd_month", "Revenue", "usd"),
             ("llm_cost_usd_month", "LLM cost", "usd"), ("margin_usd_month", "Margin", "usd")], econ["tier_margins"])
    if sections.get("savings"):
        lines += ["", "## Projected vs realized savings", ""] + _md_table(
            [("resource", "Resource", ""), ("projected_monthly_usd", "Projected/month", "usd"),
             ("realized_monthly_usd", "Realized/month", "usd"), ("realized_usd", "Saved so far", "usd"),
             ("hours_held", "Hours held", "num")], sections["savings"])
    if sections.get("warnings"):
        lines += ["", "## Report warnings", *[f"- {w}" for w in sections["warnings"]]]
    return "\n".join(lines) + "\n"
