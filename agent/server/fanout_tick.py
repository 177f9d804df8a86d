"""The scheduler's half of the distributed mode: a tick becomes one run and one job per part.

A part is (policy, account, region) for a per-account AWS policy, or the whole policy ("*", "*")
for the others (billing exports, GCP, token usage: one source, nothing to split). The accounts are
listed once per tick, as a sweep in one process lists them (tools/aws/session.py). Each job carries
its part's identity: procrastinate's `queueing_lock` makes re-enqueueing the same part while it
waits a no-op, the part row (state/store/parts.py) makes a second run of it a no-op, and `lock`
(the account) keeps one account's jobs in sequence across all workers, so an account never sees
more than one sweep's request rate, whatever the number of workers.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from costwarden.agent.config import Settings
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.store import Store
from costwarden.state.store.parts import PartKey

log = logging.getLogger("costwarden.fanout")

TASK_NAME = "costwarden.sweep_part"


def per_account(lp: LoadedPolicy) -> bool:
    """AWS policies read through the cloud clients split by account and region; the rest do not."""
    from costwarden.tools.collectors import get_collector

    spec = get_collector(lp.policy.resource)
    return spec.provider == "aws" and spec.source is None


def account_parts(settings: Settings, clients: Any) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(account id, role ARN or None for the base credentials) of every account a sweep would visit,
    and the error lines of those it could not name (an organization that cannot be listed)."""
    from costwarden.tools.aws.assume import account_of_arn
    from costwarden.tools.aws.session import AccountClients, UnlistedAccounts

    out: list[tuple[str, str | None]] = []
    errors: list[str] = []
    for view in clients.accounts():
        if isinstance(view, AccountClients):
            out.append((account_of_arn(view.role_arn), view.role_arn))
        elif isinstance(view, UnlistedAccounts):
            errors.append(str(view.error))
        else:
            try:
                out.append((view.account_id(settings.aws.regions[0]), None))
            except Exception as exc:  # noqa: BLE001 - one line, like the collectors' per-account error path
                errors.append(f"aws {view.label}: cannot identify the account: {exc.__class__.__name__}")
    return out, errors


def plan_tick(settings: Settings, policies: list[LoadedPolicy], run_id: str,
              clients: Any) -> tuple[list[PartKey], list[str]]:
    """The tick's parts, and the lines of what could not be planned."""
    parts: list[PartKey] = []
    accounts: list[tuple[str, str | None]] | None = None
    errors: list[str] = []
    for lp in policies:
        if not per_account(lp):
            parts.append(PartKey(run_id, lp.name, "*", "*"))
            continue
        if accounts is None:
            accounts, errors = account_parts(settings, clients)
        parts.extend(PartKey(run_id, lp.name, account, region, role)
                     for account, role in accounts for region in settings.aws.regions)
    return parts, errors


def enqueue_tick(settings: Settings, policies: list[LoadedPolicy], store: Store, app: Any, *,
                 now: datetime | None = None, trigger: str = "schedule") -> tuple[str, int]:
    """Start the tick's run, record its parts, enqueue their jobs; (run id, jobs enqueued).

    A policy whose previous tick is still being swept gets no new tick (("", 0)): as in one process,
    a sweep never overlaps itself, and a backlog does not grow a tick at a time when the workers
    are too few; the log says so, and the next tick after it finishes runs."""
    from costwarden.agent.engine.context import Providers
    from costwarden.agent.engine.sweep import new_run_id

    busy = {lp.name: n for lp in policies if (n := store.open_parts(lp.name))}
    for name in [n for n in busy if not queued_jobs(store, n)]:  # open parts whose jobs are gone: never finishing
        store.fail_open_parts(name, "its job left the queue without finishing (failed after its retries, or deleted)")
        del busy[name]
    if busy:
        log.warning("previous tick still being swept; this one is skipped", extra={"open_parts": busy})
        return "", 0
    now = now or datetime.now(timezone.utc)
    run_id = new_run_id(now)
    store.start_run(run_id, dry_run=settings.dry_run, policies=[p.name for p in policies], trigger=trigger)
    providers = Providers(settings, dry_run=True)  # listing accounts reads only
    parts, errors = plan_tick(settings, policies, run_id, providers.aws if any(map(per_account, policies)) else None)
    if not parts:  # nothing to sweep (no account could be named): the run says why
        store.finish_run(run_id, status="partial" if errors else "done", errors=errors, monthly_waste=_zero(),
                         projected_savings=_zero())
        return run_id, 0
    unlisted = PartKey(run_id, "(accounts)", "unlisted", "*")
    store.plan_parts([*parts, unlisted] if errors else parts)
    if errors:  # before any job runs, so the run cannot close without these lines
        store.finish_part(unlisted, status="failed", errors=errors, monthly_waste=_zero(), projected_savings=_zero(),
                          api_calls=[])
    hashes = {lp.name: lp.content_hash for lp in policies}
    n = defer_parts(app, parts, hashes, now=now, dry_run=settings.dry_run)
    log.info("tick enqueued", extra={"run_id": run_id, "parts": len(parts), "jobs": n, "errors": errors})
    return run_id, n


def queued_jobs(store: Store, policy: str) -> int:
    """The policy's jobs waiting or running in procrastinate's table."""
    from sqlalchemy import text

    with store.engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = :t AND status IN "
                                  "('todo', 'doing') AND args->>'policy' = :p"),
                             {"t": TASK_NAME, "p": policy}).scalar() or 0)


def job_kwargs(key: PartKey, policy_hash: str, *, now: datetime, dry_run: bool) -> dict[str, Any]:
    return {"run_id": key.run_id, "policy": key.policy, "account": key.account, "region": key.region,
            "role_arn": key.role_arn, "policy_hash": policy_hash, "now": now.isoformat(), "dry_run": dry_run}


def defer_parts(app: Any, parts: list[PartKey], hashes: dict[str, str], *, now: datetime, dry_run: bool) -> int:
    """Enqueue one job per part, in one batch; a part whose job is already waiting is skipped."""
    from procrastinate import exceptions

    task = app.tasks[TASK_NAME]
    jobs = [task.configure(lock=f"account:{p.account}" if p.account != "*" else f"policy:{p.policy}",
                           queueing_lock=f"{p.run_id}/{p.policy}/{p.account}/{p.region}",
                           task_kwargs=job_kwargs(p, hashes[p.policy], now=now, dry_run=dry_run)).job
            for p in parts]
    try:
        return len(app.job_manager.batch_defer_jobs(jobs))
    except exceptions.AlreadyEnqueued:  # one at a time then: the waiting ones are skipped
        n = 0
        for job in jobs:
            try:
                app.job_manager.defer_job(job)
                n += 1
            except exceptions.AlreadyEnqueued:
                pass
        return n


def _zero() -> Any:
    from decimal import Decimal

    return Decimal(0)
