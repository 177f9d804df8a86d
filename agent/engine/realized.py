"""Measure realized savings of executed actions and record them next to the projected figures.

Why a separate step: the projected saving is written when the action is planned; whether it
held is only known later. `refresh_realized` looks at each `done` action's resource again with
the action's own read-only `observe` (DescribeInstances, ...), folds the observation into the
running measurement (policies/savings.py) and, when FOCUS exports are configured and carry the
resource's rows, adds a billing-based figure. Run it periodically (`costwarden report --since
DATE --measure`, or from the daemon after each sweep): each call adds one observation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from costwarden.policies.savings import Realized, advance, realized_from_billing, start
from costwarden.state.domain import HOURS_PER_MONTH
from costwarden.state.store import Store, as_utc
from costwarden.tools.registry import get_tool

log = logging.getLogger("costwarden.realized")


def hourly_rate(action: Any, finding: Any) -> Decimal:
    """The run-rate the action removed: the resource's recorded hourly price, else projected / 730."""
    price = ((finding.evidence or {}).get("hourly_price_usd") if finding is not None else None)
    if price is not None:
        return Decimal(str(price))
    return Decimal(action.projected_monthly_savings_usd) / HOURS_PER_MONTH


def _billing_daily(billing: Any, names: list[str]) -> dict[date, Decimal]:
    """Daily FOCUS cost of rows whose ResourceId is one of `names` (the id, or its Name tag)."""
    from costwarden.tools.billing.focus import FocusExport

    fx = FocusExport(billing.focus_paths, cost_column=billing.cost_column, tag_map=billing.tag_map)
    try:
        marks = ", ".join("?" for _ in names)
        rows = fx._run(f"SELECT CAST(charge_start AS DATE), SUM({fx._cost}) FROM focus "
                       f"WHERE resource_id IN ({marks}) GROUP BY 1", list(names))
    finally:
        fx.close()
    out: dict[date, Decimal] = defaultdict(Decimal)
    for day, cost in rows:
        out[day] += Decimal(cost or 0)
    return dict(out)


def refresh_realized(store: Store, providers: Any, *, now: datetime | None = None,
                     billing: Any = None) -> list[dict[str, Any]]:
    """Observe every executed action's resource once more; record and return the measurements.

    A resource that cannot be read is skipped this time (nothing is claimed for it) and logged.
    """
    now = now or datetime.now(timezone.utc)
    out = []
    for action, finding, acted_at in store.executed_actions():
        prev_row = store.get_realized(action.id)
        if prev_row is None:
            current: Realized = start(hourly_rate(action, finding), acted_at)
        else:
            current = Realized(hourly_usd=Decimal(prev_row.hourly_usd), acted_at=as_utc(prev_row.acted_at),
                               observed_until=as_utc(prev_row.observed_until), held=prev_row.held,
                               hours_observed=Decimal(prev_row.hours_observed),
                               hours_held=Decimal(prev_row.hours_held))
        try:
            spec = get_tool(action.tool)
            state = spec.observe(providers.clients_for(spec.provider), **action.args)
            held = bool(spec.is_done(state))
        except Exception as exc:  # noqa: BLE001 - one unreadable resource must not stop the others
            log.warning("realized savings: cannot read %s: %s", action.resource_key, exc)
            continue
        if action.tool.startswith("llm."):  # measured from the usage rollup, not from a run-rate
            from costwarden.agent.engine.realized_llm import record_llm_realized

            try:
                out.append(record_llm_realized(store, action, finding, as_utc(acted_at), now, billing, held, state))
            except Exception as exc:  # noqa: BLE001 - a bad usage source leaves the others measured
                log.warning("realized savings: usage for %s: %s", action.resource_key, exc)
            continue
        current = advance(current, now, held)
        billing_monthly = None
        if billing is not None and getattr(billing, "focus_paths", None):
            names = [action.resource_key.rsplit(":", 1)[-1]]
            name_tag = ((action.before_state or {}).get("tags") or {}).get("Name")
            if name_tag:
                names.append(name_tag)
            try:
                measured = realized_from_billing(_billing_daily(billing, names), acted_at)
                billing_monthly = measured.realized_monthly_usd if measured else None
            except Exception as exc:  # noqa: BLE001 - a bad export leaves the state-based figure
                log.warning("realized savings: billing for %s: %s", action.resource_key, exc)
        store.save_realized(action.id, method="billing" if billing_monthly is not None else "state",
                            hourly_usd=current.hourly_usd, acted_at=current.acted_at,
                            observed_until=current.observed_until, held=current.held,
                            last_state=str(state.get("state", ""))[:60], hours_observed=current.hours_observed,
                            hours_held=current.hours_held, realized_usd=current.realized_usd,
                            realized_monthly_usd=current.realized_monthly_usd, billing_monthly_usd=billing_monthly)
        out.append({"action_id": action.id, "resource": action.resource_key, "state": state.get("state"),
                    "held": held, "hours_held": float(round(current.hours_held, 2)),
                    "hours_observed": float(round(current.hours_observed, 2)),
                    "hourly_usd": float(current.hourly_usd), "realized_usd": float(current.realized_usd),
                    "realized_monthly_usd": None if current.realized_monthly_usd is None
                    else float(current.realized_monthly_usd),
                    "billing_monthly_usd": None if billing_monthly is None else float(billing_monthly),
                    "projected_monthly_usd": float(action.projected_monthly_savings_usd)})
    return out
