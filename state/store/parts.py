"""The parts of a fanned-out run (agent/server/fanout.py): planned by the scheduler, swept by worker jobs.

Why a table and not only the task queue's own jobs: the part row is the job's identity in the
tick. A job retried after its worker died, or enqueued twice, finds its part `done` and sweeps
nothing; and the run is closed (status, totals, API calls) by whichever part finishes last, with
the run row locked so two last parts cannot both close it. A job's own rows take one round trip
each way (begin, finish): at a thousand jobs a tick they are the queue's hot path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update

from costwarden.state.models import DecisionRow, Run, RunPartRow
from costwarden.state.store.db import Database, StoreError

FINAL = ("done", "partial", "failed")


def wall_clock() -> datetime:
    """When a part started and finished, and when the run closed, are operational facts read with
    the wall clock: a job runs under its tick's clock (state/clock.py), which starts at the tick's
    `now` however long the job waited in the queue, so it cannot say when the job really ran."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class PartKey:
    run_id: str
    policy: str
    account: str  # "*": the policy is swept whole (not an AWS per-account policy)
    region: str  # "*": every configured region
    role_arn: str | None = None  # None: the base credentials

    @property
    def label(self) -> str:
        return f"{self.policy} {self.account}/{self.region}"


class PartRecords(Database):
    def plan_parts(self, parts: Iterable[PartKey]) -> int:
        """Record the tick's parts as queued (one transaction); parts already there are left alone."""
        n = 0
        with self.session() as s:
            for p in parts:
                if s.get(RunPartRow, (p.run_id, p.policy, p.account, p.region)) is None:
                    s.add(RunPartRow(run_id=p.run_id, policy=p.policy, account=p.account, region=p.region,
                                     role_arn=p.role_arn, status="queued", attempts=0, errors=[],
                                     monthly_waste_usd=Decimal(0), projected_monthly_savings_usd=Decimal(0)))
                    n += 1
        return n

    def begin_part(self, key: PartKey, worker: str) -> int | None:
        """Mark the part running and count the attempt; None when it is already finished (nothing to
        sweep). One UPDATE (its own transaction, one round trip): it takes the row's lock, so two
        workers starting the part at once count two attempts, and a finished part is never begun."""
        with self.autocommit() as c:
            row = c.execute(update(RunPartRow).where(*_part(key), RunPartRow.status.not_in(FINAL)).values(
                attempts=RunPartRow.attempts + 1, status="running", worker=worker, started_at=wall_clock(),
            ).returning(RunPartRow.attempts)).first()
            if row is not None:
                return int(row[0])
            _known(c, key)
            return None

    def finish_part(self, key: PartKey, *, status: str, errors: list[str], monthly_waste: Decimal,
                    projected_savings: Decimal, api_calls: list[dict[str, Any]]) -> bool:
        """Record the part's outcome; True when it was the last open part and closed the run.

        The part's UPDATE commits before the part counts the run's open parts, so whichever part
        commits last counts none and closes the run; two parts that both count none both try, under
        the run row's lock, and only the first finds the run still running. Only those lock the run
        row: a part that is not the last one makes two round trips and waits for no other part
        (every part used to lock the run row first, and the run's finishing parts queued there)."""
        with self.autocommit() as c:
            row = c.execute(update(RunPartRow).where(*_part(key), RunPartRow.status.not_in(FINAL)).values(
                status=status, errors=list(errors), finished_at=wall_clock(), monthly_waste_usd=monthly_waste,
                projected_monthly_savings_usd=projected_savings, api_calls=[dict(x) for x in api_calls],
            ).returning(RunPartRow.run_id)).first()
            if row is None:
                _known(c, key)
                return False  # a duplicate finish (a worker presumed dead came back): the first one stands
            if c.scalar(_open_in_run(key.run_id)):
                return False
        with self.session() as s:
            run = s.get(Run, key.run_id, with_for_update=True)
            if run is None:
                raise StoreError(f"unknown run {key.run_id}")
            if run.status != "running":
                return False
            _close(s, run)
            return True

    def open_parts(self, policy: str) -> int:
        """Parts of the policy's earlier ticks not finished yet (queued, or running)."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(RunPartRow).where(
                RunPartRow.policy == policy, RunPartRow.status.not_in(FINAL))) or 0)

    def fail_open_parts(self, policy: str, reason: str) -> int:
        """Close the policy's open parts as failed (their jobs are gone from the queue); each run whose
        last part this was is closed too."""
        with self.session() as s:
            keys = [PartKey(r.run_id, r.policy, r.account, r.region, r.role_arn) for r in s.scalars(
                select(RunPartRow).where(RunPartRow.policy == policy, RunPartRow.status.not_in(FINAL)))]
        for key in keys:
            self.finish_part(key, status="failed", errors=[reason], monthly_waste=Decimal(0),
                             projected_savings=Decimal(0), api_calls=[])
        return len(keys)

    def parts_of(self, run_id: str) -> list[RunPartRow]:
        with self.session() as s:
            return list(s.scalars(select(RunPartRow).where(RunPartRow.run_id == run_id).order_by(
                RunPartRow.policy, RunPartRow.account, RunPartRow.region)))


def _part(key: PartKey) -> tuple[Any, ...]:
    return (RunPartRow.run_id == key.run_id, RunPartRow.policy == key.policy, RunPartRow.account == key.account,
            RunPartRow.region == key.region)


def _known(c: Any, key: PartKey) -> None:
    """The part exists (it is finished, then): a part never planned is an error, named."""
    if c.execute(select(RunPartRow.status).where(*_part(key))).first() is None:
        raise StoreError(f"unknown run part {key.run_id} {key.label}")


def _open_in_run(run_id: str) -> Any:
    return select(func.count()).select_from(RunPartRow).where(RunPartRow.run_id == run_id,
                                                              RunPartRow.status.not_in(FINAL))


def _close(s: Any, run: Run) -> None:
    """The run's totals are its parts' sums; its errors are theirs, each naming its part."""
    parts = list(s.scalars(select(RunPartRow).where(RunPartRow.run_id == run.id)))
    errors = [f"{p.policy} {p.account}/{p.region}: {e}" for p in parts for e in (p.errors or [])]
    calls: Counter[tuple[str, str]] = Counter()
    for p in parts:
        for c in p.api_calls or []:
            calls[(c["service"], c["operation"])] += int(c["count"])
    run.status = "done" if all(p.status == "done" for p in parts) else "partial"
    run.errors = errors
    run.finished_at = wall_clock()
    run.monthly_waste_usd = sum((p.monthly_waste_usd for p in parts), Decimal(0))
    run.projected_monthly_savings_usd = sum((p.projected_monthly_savings_usd for p in parts), Decimal(0))
    run.api_calls = [{"service": svc, "operation": op, "count": n} for (svc, op), n in sorted(calls.items())]
    s.add(DecisionRow(run_id=run.id, stage="run", decision=run.status,
                      reason="; ".join(errors)[:2000] if errors else f"sweep complete ({len(parts)} parts)"))
