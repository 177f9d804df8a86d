"""The figures an audit report shows beyond the JSON contract, gathered once as plain data.

`build_sections` reads the sweep's result, the billing files and the store, and returns one
JSON-able dictionary; the JSON form carries it under `report`, and the HTML and Markdown forms
only format it (agent/reports/render.py), so the three never disagree.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from costwarden.agent.engine.sweep import SweepResult
from costwarden.state.domain import Finding

PROFILE_KEY = "gpu_util_by_hour_utc_pct"  # set by the idle-gpu detector (24 hourly means)


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
    from costwarden.tools.billing.warehouse.export import open_export

    today = now.astimezone(timezone.utc).date()
    fx = open_export(billing, now)
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
                     "insufficient_data": len(result.insufficient),
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
    if billing is not None and (billing.has_bill or billing.has_usage):
        from costwarden.agent.reports.spend import USERS_ESTIMATED, build_report
        from costwarden.tools.errors import ToolError

        try:
            if billing.has_bill:
                sections["daily_spend"] = _daily_spend(billing, now)
            doc = build_report(billing, now, anomalies=False)
        except ToolError as exc:
            sections["warnings"].append(f"billing: {exc}")
        else:
            u = doc.get("usage") or {}
            sections["economics"] = {
                "window_days": u.get("window_days"), "overall": u.get("overall"),
                "by_feature": u.get("by_feature", []), "by_tier": u.get("by_tier", []),
                "tier_margins": u.get("tier_margins", []), "users_note": USERS_ESTIMATED if u.get("users_estimated") else None,
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
