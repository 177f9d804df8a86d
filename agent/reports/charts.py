"""The report's charts: matplotlib figures (Agg backend, SVG) returned as inline SVG text.

Why SVG drawn here: the HTML report is one file opened anywhere, with no network and no script,
so each chart is vector markup embedded in the page, its text kept as text and its ids stable
from run to run. matplotlib is the `report` extra: `require_charts` says so before a sweep.
"""

from __future__ import annotations

import html
import io
from datetime import date
from typing import Any

_CHART_TEXT = "#1f2933"
_ACCENT, _RED, _MUTED = "#2563eb", "#dc2626", "#9aa5b1"
TOP_BARS = 12  # bars of a bar chart, the last one "other (N)" when there are more


def require_charts() -> None:
    """Fail before a sweep, not after it, when the charting library is missing."""
    import importlib.util

    from costwarden.tools.errors import ToolError

    if importlib.util.find_spec("matplotlib") is None:
        raise ToolError("--format html needs matplotlib, which is not installed: pip install 'costwarden[report]'")


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
    """Monthly waste per category, largest on top; past TOP_BARS the rest is one "other (N)" bar,
    so the bars add up to the total waste."""
    from costwarden.agent.reports.rest import top_with_rest

    rows = top_with_rest([r for r in rows if r["monthly_waste_usd"] > 0], TOP_BARS, label, ["monthly_waste_usd"])
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
    """Projected against realized monthly savings, per executed action; past TOP_BARS the rest is one
    "other (N)" pair of bars, so the chart sums to the totals."""
    import numpy as np

    from costwarden.agent.reports.rest import top_with_rest

    rows = top_with_rest(rows, TOP_BARS, "resource", ["projected_monthly_usd", "realized_monthly_usd"])
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
