"""What the store recorded over a window of time: runs, distinct findings, actions, realized savings.

Read by `costwarden report --since` and by the weekly digest.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.agent.reports.spend import rounded


def store_window(store: Any, since: datetime) -> dict[str, Any]:
    """What the store recorded since `since`, over every run in the window, not one.

    Sweeps repeat: the same idle GPU is found every hour. Findings are therefore counted once
    per fingerprint (the latest occurrence), so the window's waste is not the sum of its sweeps.
    """
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
                        "projected_monthly_usd": rounded(a.projected_monthly_savings_usd),
                        "realized_monthly_usd": rounded(m.realized_monthly_usd) if m else None,
                        "realized_usd": rounded(m.realized_usd) if m else None,
                        "hours_held": rounded(m.hours_held, 1) if m else None,
                        "billing_monthly_usd": rounded(m.billing_monthly_usd) if m else None})
    measured = [s_ for s_ in savings if s_["realized_monthly_usd"] is not None]
    return {
        "since": since.isoformat(),
        "runs": {"total": len(w["runs"]), "by_status": dict(Counter(r.status for r in w["runs"])),
                 "live": sum(1 for r in w["runs"] if not r.dry_run)},
        "findings": {"rows": len(w["findings"]), "distinct": len(latest),
                     "monthly_waste_usd": rounded(sum((f.monthly_waste_usd for f in latest.values()), Decimal(0))),
                     "by_detector": sorted(({"detector": d, "findings": len(fs),
                                             "monthly_waste_usd": rounded(sum((f.monthly_waste_usd for f in fs), Decimal(0)))}
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
