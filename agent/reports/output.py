"""Render a sweep as a rich table, the JSON contract of DESIGN.md, or Markdown for a ticket."""

from __future__ import annotations

import json
from typing import Any

from costwarden.agent.engine.sweep import SweepResult
from costwarden.state.domain import Finding, PlannedAction
from costwarden.tools.calls import by_operation

FINDING_FIELDS = ("id", "policy", "detector", "provider", "account", "region", "resource_id", "resource_type",
                  "evidence", "monthly_waste_usd", "severity", "confidence", "rationale")
# `action`: the policy's name for it (stop, cap-spend, ...), next to the tool that carries it out
ACTION_FIELDS = ("id", "finding_id", "action", "tool", "args", "decision", "reason", "status",
                 "projected_monthly_savings_usd")


def _finding_json(f: Finding) -> dict[str, Any]:
    d = f.to_dict()
    out = {k: d[k] for k in FINDING_FIELDS}
    out["monthly_waste_usd"] = float(f.monthly_waste_usd)
    out["name"] = f.tags.get("Name", "")
    return out


def _action_json(a: PlannedAction) -> dict[str, Any]:
    d = a.to_dict()
    out = {k: d[k] for k in ACTION_FIELDS}
    out["projected_monthly_savings_usd"] = float(a.projected_monthly_savings_usd)
    return out


def to_document(r: SweepResult) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "dry_run": r.dry_run,
        "status": r.status,
        "findings": [_finding_json(f) for f in r.findings],
        "actions": [_action_json(a) for a in r.actions],
        # resources no detector could judge for want of data: never waste, never in the totals
        "insufficient": [dict(x) for x in r.insufficient],
        "totals": {"monthly_waste_usd": float(r.monthly_waste_usd),
                   "projected_monthly_savings_usd": float(r.projected_monthly_savings_usd),
                   "findings": len(r.findings), "actions": len(r.actions),
                   "agent_llm_calls": r.llm_calls, "agent_llm_cost_usd": float(r.llm_cost_usd)},
        "errors": r.errors,
        "warnings": r.warnings,
        # every cloud API call the run sent (each call once, whatever its retries), per API operation
        "api_calls": by_operation(r.api_calls),
        # the SDK's retries behind the run's calls (throttling, 5xx, connection errors), per API operation
        "retries": by_operation(r.retries),
    }


def render_json(r: SweepResult, sections: dict[str, Any] | None = None) -> str:
    """The JSON contract; with the report's sections (agent/reports/sections.py) under `report`."""
    doc = to_document(r)
    if sections is not None:
        doc["report"] = sections
    return json.dumps(doc, indent=2, sort_keys=False)


def render_html(r: SweepResult, sections: dict[str, Any] | None = None) -> str:
    """The self-contained HTML report (inline CSS and SVG charts)."""
    from costwarden.agent import __version__
    from costwarden.agent.reports.render import render_html as _render
    from costwarden.agent.reports.sections import build_sections

    return _render(r, sections if sections is not None else build_sections(r), version=__version__)


def _why(f: Finding) -> str:
    return f.rationale or f.detector


def _rows(r: SweepResult) -> list[tuple[Finding, PlannedAction | None]]:
    by_finding: dict[str, PlannedAction] = {}
    for a in r.actions:
        by_finding.setdefault(a.finding_id, a)
    return [(f, by_finding.get(f.id)) for f in r.findings]


def _resource_label(f: Finding) -> str:
    name = f.tags.get("Name")
    return f"{f.resource_id}" + (f" ({name})" if name else "")


def gap_resource(x: dict[str, Any]) -> str:
    """An insufficient-data row's resource, as the findings table labels one."""
    return f"{x['resource_id']}" + (f" ({x['name']})" if x.get("name") else "") + \
        f"\n{x['resource_type']} · {x['account']}/{x['region']}"


def _headline(r: SweepResult) -> str:
    mode = "DRY-RUN audit: nothing was changed" if r.dry_run else "LIVE sweep"
    return (f"{mode} · run {r.run_id} · {r.inventoried} resources inventoried · {len(r.findings)} findings · "
            + (f"{len(r.insufficient)} insufficient data · " if r.insufficient else "")
            + f"monthly waste ${r.monthly_waste_usd:,.2f} · projected savings ${r.projected_monthly_savings_usd:,.2f}/month"
            + (f" · agent LLM spend ${r.llm_cost_usd:,.4f} ({r.llm_calls} calls)" if r.llm_calls else ""))


def render_markdown(r: SweepResult, sections: dict[str, Any] | None = None) -> str:
    """The findings table as Markdown for a ticket; with the report's sections after it when given."""
    from costwarden.agent.reports.render import render_markdown as _render

    return _render(r, _headline(r), sections)


def render_table(r: SweepResult, console: Any) -> None:
    from rich.table import Table

    from costwarden.agent.reports.render import coverage

    table = Table(title="Costwarden audit", caption=_headline(r), show_lines=True, expand=True)
    table.add_column("Resource", overflow="fold", ratio=2)
    table.add_column("Why", overflow="fold", ratio=5)
    table.add_column("Monthly waste", justify="right", no_wrap=True, min_width=12)
    table.add_column("Proposed action", no_wrap=True)
    table.add_column("Decision", overflow="fold", ratio=2)
    colors = {"auto": "green", "needs_approval": "yellow", "report": "cyan", "skip": "dim"}
    for f, a in _rows(r):
        decision = (f"[{colors.get(a.decision, 'white')}]{a.decision}[/] ({a.status})\n{a.reason}" if a else "report")
        table.add_row(f"{_resource_label(f)}\n{f.resource_type} · {f.account}/{f.region}", _why(f),
                      f"${f.monthly_waste_usd:,.2f}", a.action if a else "-", decision)
    if not r.findings:
        table.add_row("no waste found", "", "$0.00", "", "")
    console.print(table)
    for a in r.actions:  # a config change (route-model) is shown as the diff a person would approve
        if (a.args or {}).get("diff"):
            console.print(f"[bold]Proposed change[/] {a.action} {a.args.get('feature', '')} ({a.id}, "
                          f"{a.decision}): commit on branch {a.args.get('branch')} of {a.args.get('repo')}")
            console.print(a.args["diff"].rstrip("\n"), markup=False, highlight=False)
    if r.insufficient:
        gaps = Table(title="Insufficient data: not judged, not counted as waste", show_lines=False, expand=True)
        gaps.add_column("Resource", overflow="fold", ratio=2)
        gaps.add_column("Detector", no_wrap=True)
        gaps.add_column("Metric", overflow="fold", ratio=2)
        gaps.add_column("Coverage", justify="right", no_wrap=True)
        gaps.add_column("Why", overflow="fold", ratio=4)
        for x in r.insufficient:
            gaps.add_row(gap_resource(x), x["detector"], x["metric"], coverage(x), x["reason"])
        console.print(gaps)
    for e in r.errors:
        console.print(f"[red]error:[/] {e}")
    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {w}")
