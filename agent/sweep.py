"""One sweep: open the store and checkpointer, run the graph on a new thread (thread id = run id)."""

from __future__ import annotations

import secrets
from collections import Counter
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver

from agent.config import Settings
from agent.context import Providers, SweepContext
from agent.graph import build_graph
from agent.nodes.record import totals
from policies.loader import LoadedPolicy
from state.domain import Finding, PlannedAction
from state.store import Store
from tools.pricing import PriceBook


@dataclass
class SweepResult:
    run_id: str
    dry_run: bool
    status: str
    findings: list[Finding]
    actions: list[PlannedAction]
    inventoried: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    refused_calls: dict[str, int] = field(default_factory=dict)
    llm_calls: int = 0  # the agent's own model calls in this run, and what they cost
    llm_cost_usd: Decimal = Decimal(0)
    priority: list[str] = field(default_factory=list)  # finding ids in digest order

    @property
    def monthly_waste_usd(self) -> Decimal:
        return totals({"findings": [f.to_dict() for f in self.findings], "actions": []})[0]

    @property
    def projected_monthly_savings_usd(self) -> Decimal:
        return totals({"findings": [], "actions": [a.to_dict() for a in self.actions]})[1]


def new_run_id(now: datetime) -> str:
    return f"run_{now:%Y%m%dT%H%M%SZ}_{secrets.token_hex(3)}"


@contextmanager
def open_checkpointer(settings: Settings) -> Iterator[SqliteSaver]:
    settings.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(settings.checkpoint_path), check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        yield SqliteSaver(conn)
    finally:
        conn.close()


def run_sweep(settings: Settings, policies: list[LoadedPolicy], *, dry_run: bool, store: Store | None = None,
              trigger: str = "cli", progress: Callable[[str], None] | None = None,
              now: datetime | None = None) -> SweepResult:
    own_store = store is None
    store = store or Store(settings.db_url)
    now = now or datetime.now(timezone.utc)
    run_id = new_run_id(now)
    providers = Providers(settings, dry_run=dry_run)
    ctx = SweepContext(settings=settings, store=store, policies={p.name: p for p in policies}, providers=providers,
                       prices=PriceBook(settings.pricing.overrides), now=now, progress=progress or (lambda _m: None))
    store.start_run(run_id, dry_run=dry_run, policies=[p.name for p in policies], trigger=trigger)
    try:
        with open_checkpointer(settings) as saver:
            graph = build_graph(saver)
            final: dict[str, Any] = graph.invoke(
                {"run_id": run_id, "dry_run": dry_run, "errors": [], "warnings": []},
                {"configurable": {"thread_id": run_id}}, context=ctx)
        waiting = [a["id"] for a in final.get("actions", []) if a["status"] == "awaiting_approval"]
        if waiting:
            from agent.approvals import open_threads

            open_threads(settings, store, waiting)  # each pauses in interrupt() until a human decides
        llm_calls, llm_cost = store.llm_usage(run_id)
    except BaseException as exc:
        store.finish_run(run_id, status="failed", errors=[f"{exc.__class__.__name__}: {exc}"],
                         monthly_waste=Decimal(0), projected_savings=Decimal(0))
        raise
    finally:
        if own_store:
            store.close()
    calls: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for log in providers.call_logs():
        calls.update(log.calls)
        refused.update(log.refused)
    return SweepResult(
        run_id=run_id, dry_run=dry_run, status=final.get("status", "done"),
        findings=[Finding.from_dict(d) for d in final.get("findings", [])],
        actions=[PlannedAction.from_dict(d) for d in final.get("actions", [])],
        inventoried=final.get("inventoried", 0), errors=final.get("errors", []), warnings=final.get("warnings", []),
        api_calls=dict(calls), refused_calls=dict(refused),
        priority=final.get("priority", []), llm_calls=llm_calls, llm_cost_usd=llm_cost,
    )
