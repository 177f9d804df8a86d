"""One part of a fanned-out run: one policy over one account and one region, under the tick's run.

A worker job (agent/server/fanout.py) calls `sweep_part`. It builds its own context (settings narrowed to
the part's account and region, its own clients and call log), runs the same graph as a sweep in
one process, and its `record` node closes the part instead of the run (state/store/parts.py).
Why the graph is not changed for this: detection, planning, the guard and the claim are the same
code whichever process runs them; only the scope and who closes the run differ.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.engine.worker_cache import WorkerCache
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.clock import clock_at
from costwarden.state.lifecycle import ActionStatus
from costwarden.state.store import Store
from costwarden.state.store.parts import PartKey
from costwarden.tools.calls import by_operation

log = logging.getLogger("costwarden.part")


def part_settings(settings: Settings, key: PartKey) -> Settings:
    """The settings of one part: its one role (or the base credentials) and its one region."""
    if key.account == "*":
        return settings
    aws = settings.aws.model_copy(update={"accounts": [key.role_arn] if key.role_arn else [], "organization": None,
                                          "regions": [key.region] if key.region != "*" else settings.aws.regions})
    return settings.model_copy(update={"aws": aws})


def part_calls(providers: Any) -> list[dict[str, Any]]:
    from costwarden.agent.engine.sweep import call_counts

    return by_operation(call_counts(providers)[0])


def sweep_part(settings: Settings, policy: LoadedPolicy, key: PartKey, *, store: Store, dry_run: bool,
               now: datetime, worker: str, cache: WorkerCache | None = None) -> str | None:
    """Sweep the part unless it is already finished; its status, or None when there was nothing to do.

    `cache`: what the worker process built once (agent/engine/worker_cache.py); None builds it all here."""
    from costwarden.agent.engine.context import Providers, SweepContext
    from costwarden.agent.engine.sweep import walk
    from costwarden.tools.pricing import PriceBook

    cache = cache or WorkerCache()

    attempt = store.begin_part(key, worker)
    if attempt is None:
        log.info("part already swept; nothing to do", extra={"run_id": key.run_id, "part": key.label})
        return None
    scoped = part_settings(settings, key)
    providers = Providers(scoped, dry_run=dry_run, aws_base=cache.aws_base)
    prices = PriceBook.from_settings(scoped.pricing, scoped.state_dir, call_log=providers.aws_call_log)
    ctx = SweepContext(settings=scoped, store=store, policies={policy.name: policy}, providers=providers, prices=prices,
                       now=now, part=key, resumed=attempt > 1)
    with clock_at(now):
        try:
            final, _path = walk(cache.graph, {"run_id": key.run_id, "dry_run": dry_run, "errors": [],
                                                 "warnings": []}, ctx)
        except Exception as exc:  # noqa: BLE001 - the part fails, the run goes on with the others
            store.finish_part(key, status="failed", errors=[f"{exc.__class__.__name__}: {exc}"],
                              monthly_waste=Decimal(0), projected_savings=Decimal(0), api_calls=part_calls(providers))
            log.error("part failed", extra={"run_id": key.run_id, "part": key.label, "error": str(exc)})
            return "failed"
        finally:
            providers.usage.close()  # the usage store is let go between jobs, as between sweeps
        waiting = [a["id"] for a in final.get("actions", []) if a["status"] == ActionStatus.AWAITING_APPROVAL]
        if waiting:
            from costwarden.agent.engine.approvals import open_threads

            open_threads(settings, store, waiting)
    return str(final.get("status", "done"))
