"""The gate's report as a pull-request comment (Markdown) or JSON.

The Markdown starts with a hidden marker so a CI job can find and update its own comment
instead of adding a new one on every push.
"""

from __future__ import annotations

from costwarden.policies.gate.cost import GateReport, fmt_pct

COMMENT_MARKER = "<!-- costwarden-gate -->"


def _usd(v: float | None) -> str:
    return "?" if v is None else f"${v:,.2f}"


def _delta(v: float | None) -> str:
    return "?" if v is None else f"{'+' if v >= 0 else '-'}${abs(v):,.2f}"


def _num(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:,g}"


def _is_count_source(note: str) -> bool:
    """"count 3 from `replicaCount`" explains a figure (shown under it), it does not warn."""
    return note.startswith("count ") and " from " in note


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: GateReport) -> str:
    """A PR comment: headline, verdict, the table of changes (largest first), warnings, assumptions."""
    src = report.source
    icon = "⚠️" if report.exceeded else ("✅" if not report.warnings else "ℹ️")
    lines = [COMMENT_MARKER, f"## {icon} Costwarden FinOps gate: {report.headline}", ""]
    limit = f"{_num(report.threshold_pct)}%" + (f" / ${_num(report.min_delta_usd)}" if report.min_delta_usd else "")
    verdict = (f"**Above the {limit} threshold: approval required.**" if report.exceeded
               else f"Within the {limit} threshold.")
    lines.append(f"{verdict} Compared `{src.base}` ({src.compared_from[:10]}, merge base) with `{src.head}` "
                 f"({src.head_commit[:10]}): {src.files_changed} files changed, {src.files_scanned} scanned, "
                 f"{len(report.changes)} cost-relevant change{'s' if len(report.changes) != 1 else ''}.")
    if report.changes:
        t = report.totals
        lines += ["", "| File | What changed | Old $/month | New $/month | Delta | % |",
                  "|---|---|---:|---:|---:|---:|"]
        for c in report.changes:
            where = f"`{c.file}:{c.line}`" if c.line else f"`{c.file}`"
            if c.old_file and c.old_file != c.file:
                where += f"<br><sub>renamed from `{c.old_file}`</sub>"
            basis = "; ".join([*(n for n in c.notes if _is_count_source(n)), *([c.basis] if c.basis else [])])
            what = c.summary + (f"<br><sub>{basis}</sub>" if basis else "")
            if not c.priced:
                what += "<br><sub>**unpriced**</sub>"
            lines.append(f"| {_cell(where)} | {_cell(what)} | {_usd(c.old_monthly_usd)} | {_usd(c.new_monthly_usd)} | "
                         f"{_delta(c.delta_monthly_usd)} | {fmt_pct(c.delta_pct) if c.priced else '?'} |")
        lines.append(f"| **Total (priced)** | | **{_usd(t.old_monthly_usd)}** | **{_usd(t.new_monthly_usd)}** | "
                     f"**{_delta(t.delta_monthly_usd)}** | **{fmt_pct(t.delta_pct)}** |")
    notes = [f"`{c.file}`: {n}" for c in report.changes for n in c.notes if not _is_count_source(n)]
    if report.warnings or notes:
        lines += ["", "**Warnings**", ""] + [f"- {w}" for w in report.warnings + notes]
    lines += ["", "<details><summary>Assumptions</summary>", ""] + [f"- {a}" for a in report.assumptions]
    if src.usage:
        lines.append(f"- usage data: {src.usage}")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def render_json(report: GateReport) -> str:
    return report.model_dump_json(indent=2) + "\n"
