"""One sweep: run the graph once, in this process, under a new run id.

The sweep graph keeps no checkpoints (agent/engine/graph.py says why); the actions it leaves
waiting for a human each get an approval thread, which is checkpointed (agent/engine/approvals.py).
The path the run took through the graph is logged at DEBUG (`sweep path`). The daemon runs the
graph on LangGraph; the one-shot `audit` walks the same declaration without importing it
(`inline=True`, agent/engine/inline.py).
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.engine.context import Providers, SweepContext
from costwarden.agent.engine.nodes.record import totals
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.lifecycle import ActionStatus
from costwarden.state.clock import clock_at
from costwarden.state.store import Store
from costwarden.tools.calls import by_operation
from costwarden.tools.pricing import PriceBook

log = logging.getLogger("costwarden.sweep")


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
    retries: dict[str, int] = field(default_factory=dict)  # "service.Operation" -> SDK retries behind api_calls
    llm_calls: int = 0  # the agent's own model calls in this run, and what they cost
    llm_cost_usd: Decimal = Decimal(0)
    priority: list[str] = field(default_factory=list)  # finding ids in digest order
    # resources a detector could not judge (a needed metric missing or under its coverage threshold):
    # dicts of policy, detector, resource, metric, coverage, required_coverage, reason; never waste
    insufficient: list[dict[str, Any]] = field(default_factory=list)

    @property
    def monthly_waste_usd(self) -> Decimal:
        return totals({"findings": [f.to_dict() for f in self.findings], "actions": []})[0]

    @property
    def projected_monthly_savings_usd(self) -> Decimal:
        return totals({"findings": [], "actions": [a.to_dict() for a in self.actions]})[1]


def new_run_id(now: datetime) -> str:
    return f"run_{now:%Y%m%dT%H%M%SZ}_{secrets.token_hex(3)}"


def run_sweep(settings: Settings, policies: list[LoadedPolicy], *, dry_run: bool, store: Store | None = None,
              trigger: str = "cli", progress: Callable[[str], None] | None = None,
              now: datetime | None = None, inline: bool = False) -> SweepResult:
    """One sweep of `policies`. `inline`: walk the graph in this process without importing LangGraph
    (agent/engine/inline.py), for a one-shot command; the daemon's sweeps run on LangGraph."""
    own_store = store is None
    store = store or Store(settings.db_url)
    now = now or datetime.now(timezone.utc)
    run_id = new_run_id(now)
    providers = Providers(settings, dry_run=dry_run)
    ctx = SweepContext(settings=settings, store=store, policies={p.name: p for p in policies}, providers=providers,
                       prices=PriceBook.from_settings(settings.pricing, settings.state_dir,
                                                      call_log=providers.aws_call_log),
                       now=now, progress=progress or (lambda _m: None))
    with clock_at(now):  # every row this sweep writes is stamped on the sweep's own clock
        try:
            return _run(settings, policies, store, own_store, ctx, run_id=run_id, dry_run=dry_run, trigger=trigger,
                        inline=inline)
        finally:
            providers.usage.close()  # the usage store is let go between sweeps (a CLI run may open it)


def _run(settings: Settings, policies: list[LoadedPolicy], store: Store, own_store: bool, ctx: SweepContext, *,
         run_id: str, dry_run: bool, trigger: str, inline: bool) -> SweepResult:
    providers = ctx.providers
    store.start_run(run_id, dry_run=dry_run, policies=[p.name for p in policies], trigger=trigger)
    try:
        inputs = {"run_id": run_id, "dry_run": dry_run, "errors": [], "warnings": []}
        if inline:
            from costwarden.agent.engine.inline import walk as walk_inline

            final, path = walk_inline(inputs, ctx)
        else:
            from costwarden.agent.engine.graph import build_graph

            final, path = walk(build_graph(), inputs, ctx)
        log.debug("sweep path", extra={"run_id": run_id, "nodes": path})
        waiting = [a["id"] for a in final.get("actions", []) if a["status"] == ActionStatus.AWAITING_APPROVAL]
        if waiting:
            from costwarden.agent.engine.approvals import open_threads

            open_threads(settings, store, waiting)  # each pauses in interrupt() until a human decides
        llm_calls, llm_cost = store.llm_usage(run_id)
        calls, refused, retries = call_counts(providers)
        store.set_run_api_calls(run_id, by_operation(calls))  # every call is made by now
    except BaseException as exc:
        store.finish_run(run_id, status="failed", errors=[f"{exc.__class__.__name__}: {exc}"],
                         monthly_waste=Decimal(0), projected_savings=Decimal(0))
        store.set_run_api_calls(run_id, by_operation(call_counts(providers)[0]))
        raise
    finally:
        if own_store:
            store.close()
    return SweepResult(
        run_id=run_id, dry_run=dry_run, status=final.get("status", "done"),
        findings=[Finding.from_dict(d) for d in final.get("findings", [])],
        actions=[PlannedAction.from_dict(d) for d in final.get("actions", [])],
        inventoried=final.get("inventoried", 0), errors=final.get("errors", []),
        # each once: two policies reading the same source (llm-features, llm-margins) warn about it alike
        warnings=list(dict.fromkeys([*final.get("warnings", []), *ctx.prices.warnings])),  # e.g. Price List API down
        api_calls=dict(calls), refused_calls=dict(refused), retries=dict(retries),
        priority=final.get("priority", []), insufficient=final.get("insufficient", []), llm_calls=llm_calls, llm_cost_usd=llm_cost,
    )


def call_counts(providers: Providers) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """The sweep's calls sent, calls refused and SDK retries, summed over its providers' call logs."""
    calls: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    retries: Counter[str] = Counter()
    for call_log in providers.call_logs():
        calls.update(call_log.calls)
        refused.update(call_log.refused)
        retries.update(call_log.retries)
    return calls, refused, retries


def walk(graph: Any, inputs: dict[str, Any], ctx: SweepContext) -> tuple[dict[str, Any], list[str]]:
    """Run the graph; return its final state and the nodes it ran, in order."""
    final: dict[str, Any] = dict(inputs)
    path: list[str] = []
    for mode, chunk in graph.stream(inputs, context=ctx, stream_mode=["updates", "values"]):
        if mode == "updates":
            path.extend(chunk)
        else:
            final = chunk
    return final, path
