"""record: close the run with its totals (every step before already wrote its own records)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.state.domain import SKIP

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def totals(state: SweepState) -> tuple[Decimal, Decimal]:
    waste = sum((Decimal(f["monthly_waste_usd"]) for f in state.get("findings", [])), Decimal(0))
    savings = sum((Decimal(a["projected_monthly_savings_usd"]) for a in state.get("actions", [])
                   if a["decision"] != SKIP), Decimal(0))
    return waste, savings


def record(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    waste, savings = totals(state)
    errors = state.get("errors", [])
    status = "done" if not errors else "partial"
    ctx = runtime.context
    if ctx.part is not None:  # a fan-out job: the part is closed here, the run by its last part
        from costwarden.agent.engine.part import part_calls

        ctx.store.finish_part(ctx.part, status=status, errors=errors, monthly_waste=waste, projected_savings=savings,
                              api_calls=part_calls(ctx.providers))
        return {"status": status}
    ctx.store.finish_run(state["run_id"], status=status, errors=errors, monthly_waste=waste, projected_savings=savings)
    return {"status": status}
