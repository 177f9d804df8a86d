"""The decision log, the agent's own LLM calls, and what reports read back: realized savings, windows."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from costwarden.state.models import ActionRow, DecisionRow, FindingRow, LlmCallRow, Run
from costwarden.state.store.db import Database, as_utc


class DecisionRecords(Database):
    # --- decisions and llm calls ------------------------------------------------------------
    def append_decision(self, *, stage: str, decision: str, reason: str, run_id: str | None = None,
                        action_id: str | None = None, policy: str | None = None, policy_hash: str | None = None,
                        actor: str = "costwarden", detail: dict[str, Any] | None = None) -> None:
        with self.session() as s:
            s.add(DecisionRow(run_id=run_id, action_id=action_id, policy=policy, policy_hash=policy_hash,
                              stage=stage, decision=decision, reason=reason, actor=actor, detail=detail))

    def decisions(self, *, run_id: str | None = None, action_id: str | None = None) -> list[DecisionRow]:
        q = select(DecisionRow).order_by(DecisionRow.id)
        if run_id:
            q = q.where(DecisionRow.run_id == run_id)
        if action_id:
            q = q.where(DecisionRow.action_id == action_id)
        with self.session() as s:
            return list(s.scalars(q))

    def llm_usage(self, run_id: str) -> tuple[int, Decimal]:
        """The agent's own LLM calls and their cost in one run."""
        from sqlalchemy import func

        with self.session() as s:
            n, cost = s.execute(select(func.count(), func.coalesce(func.sum(LlmCallRow.cost_usd), 0))
                                .where(LlmCallRow.run_id == run_id)).one()
        return int(n), Decimal(str(cost))

    def last_decision_at(self, *, stage: str, decision: str) -> datetime | None:
        from sqlalchemy import func

        with self.session() as s:
            at = s.scalar(select(func.max(DecisionRow.created_at)).where(DecisionRow.stage == stage,
                                                                      DecisionRow.decision == decision))
        return as_utc(at) if at is not None else None

    def record_llm_call(self, *, run_id: str | None, purpose: str, model: str, input_tokens: int,
                        output_tokens: int, cost_usd: Decimal, latency_ms: int, ok: bool,
                        error: str | None = None) -> None:
        with self.session() as s:
            s.add(LlmCallRow(run_id=run_id, purpose=purpose, model=model, input_tokens=input_tokens,
                             output_tokens=output_tokens, cost_usd=cost_usd, latency_ms=latency_ms, ok=ok, error=error))

    # --- realized savings and windows (reports) ----------------------------------------------
    def executed_actions(self, since: datetime | None = None) -> list[tuple[ActionRow, FindingRow | None, datetime]]:
        """Actions executed (`done`), with their finding and when the change was verified.

        The verify decision's time is the moment the change was proven; the action's own
        `updated_at` stands in for rows settled without one.
        """
        from sqlalchemy import func

        from costwarden.state.models import RealizedSavingsRow  # noqa: F401 - the table must exist before reports read it

        with self.session() as s:
            verified = dict(s.execute(select(DecisionRow.action_id, func.max(DecisionRow.created_at))
                                      .where(DecisionRow.stage == "verify", DecisionRow.decision == "done")
                                      .group_by(DecisionRow.action_id)).all())
            q = (select(ActionRow, FindingRow).join(FindingRow, ActionRow.finding_id == FindingRow.id, isouter=True)
                 .where(ActionRow.status == "done").order_by(ActionRow.created_at))
            if since is not None:
                q = q.where(ActionRow.updated_at >= since)
            return [(a, f, as_utc(verified.get(a.id) or a.updated_at)) for a, f in s.execute(q)]

    def get_realized(self, action_id: str) -> Any:
        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            return s.get(RealizedSavingsRow, action_id)

    def save_realized(self, action_id: str, **values: Any) -> None:
        """Insert or update the realized-savings measurement of one action."""
        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            row = s.get(RealizedSavingsRow, action_id)
            if row is None:
                s.add(RealizedSavingsRow(action_id=action_id, **values))
            else:
                for k, v in values.items():
                    setattr(row, k, v)

    def realized_totals(self) -> dict[str, Decimal]:
        """Projected vs realized monthly savings of every executed action, for /metrics."""
        from sqlalchemy import func

        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            projected, realized, to_date, measured = s.execute(
                select(func.coalesce(func.sum(ActionRow.projected_monthly_savings_usd), 0),
                       func.coalesce(func.sum(RealizedSavingsRow.realized_monthly_usd), 0),
                       func.coalesce(func.sum(RealizedSavingsRow.realized_usd), 0),
                       func.count(RealizedSavingsRow.action_id))
                .select_from(ActionRow)
                .join(RealizedSavingsRow, RealizedSavingsRow.action_id == ActionRow.id, isouter=True)
                .where(ActionRow.status == "done")).one()
        return {"projected_monthly_usd": Decimal(str(projected)), "realized_monthly_usd": Decimal(str(realized)),
                "realized_to_date_usd": Decimal(str(to_date)), "measured_actions": Decimal(int(measured))}

    def window(self, since: datetime) -> dict[str, list[Any]]:
        """Runs started, findings found and actions planned since `since` (any window, not one run)."""
        from costwarden.state.models import RealizedSavingsRow

        with self.session() as s:
            runs = list(s.scalars(select(Run).where(Run.started_at >= since).order_by(Run.started_at)))
            findings = list(s.scalars(select(FindingRow).where(FindingRow.created_at >= since)
                                      .order_by(FindingRow.created_at)))
            actions = list(s.scalars(select(ActionRow).where(ActionRow.created_at >= since)
                                     .order_by(ActionRow.created_at)))
            realized = list(s.scalars(select(RealizedSavingsRow)
                                      .join(ActionRow, RealizedSavingsRow.action_id == ActionRow.id)
                                      .where(ActionRow.created_at >= since)))
        return {"runs": runs, "findings": findings, "actions": actions, "realized": realized}
