"""Runs and their findings: what each sweep looked at and found, and the aggregates /metrics reads."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select, text, update

from costwarden.state.clock import utcnow
from costwarden.state.domain import Finding
from costwarden.state.lifecycle import ActionStatus, Transition
from costwarden.state.models import ActionRow, ApprovalRow, DecisionRow, FindingRow, LlmCallRow, Run, RunPartRow
from costwarden.state.store.actions import move
from costwarden.state.store.db import Database, StoreError


class RunRecords(Database):
    # --- runs -------------------------------------------------------------------------------
    def start_run(self, run_id: str, *, dry_run: bool, policies: list[str], trigger: str) -> None:
        with self.session() as s:
            s.add(Run(id=run_id, dry_run=dry_run, policies=policies, trigger=trigger))
            s.add(DecisionRow(run_id=run_id, stage="run", decision="started",
                              reason=f"{'dry-run' if dry_run else 'live'} sweep of {len(policies)} policies",
                              detail={"trigger": trigger}))

    def finish_run(self, run_id: str, *, status: str, errors: list[str],
                   monthly_waste: Decimal, projected_savings: Decimal) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise StoreError(f"unknown run {run_id}")
            run.status = status
            run.errors = list(errors)
            run.finished_at = utcnow()
            run.monthly_waste_usd = monthly_waste
            run.projected_monthly_savings_usd = projected_savings
            s.add(DecisionRow(run_id=run_id, stage="run", decision=status,
                              reason="; ".join(errors)[:2000] if errors else "sweep complete"))

    def set_run_api_calls(self, run_id: str, api_calls: list[dict[str, Any]]) -> None:
        """The run's cloud API calls by service and operation, written once the sweep's calls are all made."""
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise StoreError(f"unknown run {run_id}")
            run.api_calls = [dict(c) for c in api_calls]

    def get_run(self, run_id: str) -> Run | None:
        with self.session() as s:
            return s.get(Run, run_id)

    def list_runs(self, limit: int = 20) -> list[Run]:
        with self.session() as s:
            return list(s.scalars(select(Run).order_by(Run.started_at.desc()).limit(limit)))

    def interrupt_stale_runs(self) -> int:
        """Runs still `running` at start-up were cut off by a crash or a kill: say so. Not a fanned-out
        run (one with parts, agent/server/fanout.py): its workers carry on without this process, the
        queue retries a part whose worker died, and its last part closes it."""
        with self.session() as s:
            stale = list(s.scalars(select(Run).where(
                Run.status == "running", ~exists().where(RunPartRow.run_id == Run.id))))
            for run in stale:
                run.status = "interrupted"
                run.finished_at = utcnow()
                s.add(DecisionRow(run_id=run.id, stage="run", decision="interrupted",
                                  reason="the process stopped before the sweep finished"))
                # auto actions it never reached: the next sweep re-plans them under new ids
                for action_id in list(s.scalars(select(ActionRow.id).where(ActionRow.run_id == run.id,
                                                                      ActionRow.status == ActionStatus.PLANNED))):
                    move(s, action_id, Transition.REPLAN, only_from=(ActionStatus.PLANNED,))
            return len(stale)

    def latest_runs_by_policy(self, scan: int = 500) -> dict[str, Run]:
        """The most recent finished run that covered each policy."""
        latest: dict[str, Run] = {}
        with self.session() as s:
            for run in s.scalars(select(Run).where(Run.status.in_(("done", "partial")))
                                 .order_by(Run.started_at.desc()).limit(scan)):
                for name in run.policies or []:
                    latest.setdefault(name, run)
        return latest

    def metrics_snapshot(self) -> dict[str, Any]:
        """Aggregates for /metrics, read at scrape time so every replica reports the same truth."""
        from sqlalchemy import func

        latest = self.latest_runs_by_policy()
        with self.session() as s:
            findings: list[tuple[str, str, int, Decimal]] = []
            for policy, run in latest.items():
                rows = s.execute(select(FindingRow.detector, func.count(), func.coalesce(func.sum(FindingRow.monthly_waste_usd), 0))
                                 .where(FindingRow.run_id == run.id, FindingRow.policy == policy)
                                 .group_by(FindingRow.detector))
                findings.extend((policy, d, n, Decimal(str(w))) for d, n, w in rows)
            actions = [(d, st, n) for d, st, n in s.execute(
                select(ActionRow.decision, ActionRow.status, func.count()).group_by(ActionRow.decision, ActionRow.status))]
            projected = s.execute(select(func.coalesce(func.sum(ActionRow.projected_monthly_savings_usd), 0))
                                  .where(ActionRow.status == "done")).scalar()
            pending = s.execute(select(func.count()).select_from(ApprovalRow).where(ApprovalRow.status == "pending")).scalar()
            runs = [(st, n) for st, n in s.execute(select(Run.status, func.count()).group_by(Run.status))]
            llm = s.execute(select(LlmCallRow.model, func.sum(LlmCallRow.input_tokens), func.sum(LlmCallRow.output_tokens),
                                   func.sum(LlmCallRow.cost_usd)).group_by(LlmCallRow.model)).all()
        durations = {p: (r.finished_at - r.started_at).total_seconds() for p, r in latest.items()
                     if r.finished_at and r.started_at}
        return {"findings": findings, "actions": actions, "executed_projected_savings": Decimal(str(projected or 0)),
                "pending_approvals": int(pending or 0), "runs": runs, "durations": durations,
                "llm": [(m, int(i or 0), int(o or 0), Decimal(str(c or 0))) for m, i, o, c in llm]}

    # --- findings ---------------------------------------------------------------------------
    def add_findings(self, run_id: str, findings: Iterable[Finding], *, resumed: bool = False) -> list[str]:
        """Store the findings; a second finding with an id already stored (or already in this batch) is
        not stored and comes back as an error line: one detector bug must not lose the whole sweep.
        `resumed`: a retried fan-out job (agent/server/fanout.py) finds what its dead attempt stored; those ids
        (the run's own, deterministic) are kept as they are, not errors."""
        with self.session() as s:
            return self._add_findings(s, run_id, list(findings), resumed)

    def add_findings_counted(self, run_id: str, findings: Iterable[Finding], policies: Collection[str], *,
                             resumed: bool = False) -> tuple[list[str], dict[str, int]]:
        """`add_findings` for one part of a fanned-out run, returning the distinct resources each of
        `policies` has flagged in the whole run so far, this part's included.

        Why: max-resources bounds what one policy acts on in one run, and a run's parts are swept by
        several workers. The parts of a run store their findings one at a time (an advisory lock on
        PostgreSQL; SQLite has one writer), so each part's count includes every part stored before
        it: the part that takes a policy over its limit, and every later one, act on none, and the
        parts before it acted on at most the limit together."""
        with self.session() as s:
            if s.get_bind().dialect.name == "postgresql":
                s.execute(text("SELECT pg_advisory_xact_lock(hashtext('costwarden-findings:' || :run))"),
                          {"run": run_id})
            errors = self._add_findings(s, run_id, list(findings), resumed)
            s.flush()
            counts = dict(s.execute(
                select(FindingRow.policy, func.count(func.distinct(FindingRow.resource_id)))
                .where(FindingRow.run_id == run_id, FindingRow.policy.in_(list(policies)))
                .group_by(FindingRow.policy)).all()) if policies else {}
        return errors, {p: int(counts.get(p, 0)) for p in policies}

    def _add_findings(self, s: Any, run_id: str, batch: list[Finding], resumed: bool) -> list[str]:
        errors: list[str] = []
        seen = set(s.scalars(select(FindingRow.id).where(FindingRow.id.in_([f.id for f in batch]))))
        stored = set(seen) if resumed else set()
        for f in batch:
            if f.id in stored:
                stored.discard(f.id)  # kept from the dead attempt; a second copy in this batch is still an error
                continue
            if f.id in seen:
                errors.append(f"finding {f.id} ({f.detector} on {f.resource_id}): duplicate id, not stored")
                continue
            seen.add(f.id)
            s.add(FindingRow(
                id=f.id, run_id=run_id, fingerprint=f.fingerprint, policy=f.policy, detector=f.detector,
                provider=f.provider, account=f.account, region=f.region, resource_id=f.resource_id,
                resource_type=f.resource_type, evidence=f.evidence, monthly_waste_usd=f.monthly_waste_usd,
                severity=f.severity, confidence=f.confidence, rationale=f.rationale, tags=dict(f.tags or {}),
            ))
        return errors

    def set_rationales(self, rationales: dict[str, str]) -> None:
        with self.session() as s:
            for fid, text in rationales.items():
                s.execute(update(FindingRow).where(FindingRow.id == fid).values(rationale=text))

    def get_finding(self, finding_id: str) -> FindingRow | None:
        with self.session() as s:
            return s.get(FindingRow, finding_id)

    def findings_for_run(self, run_id: str) -> list[FindingRow]:
        with self.session() as s:
            return list(s.scalars(select(FindingRow).where(FindingRow.run_id == run_id).order_by(FindingRow.monthly_waste_usd.desc())))
