"""The distributed mode on procrastinate: the job queue, the worker, and the stalled-job sweep.

Why procrastinate: it is a task queue over the PostgreSQL the replicas already share (jobs are rows
taken with FOR UPDATE SKIP LOCKED, new jobs announced with LISTEN/NOTIFY), with per-job locks,
queueing locks, retries and worker heartbeats, and no broker to deploy. What Costwarden adds is
the part table (state/store/parts.py) that makes a job's effect happen once per tick.

- The scheduler (the elected leader) enqueues a tick (agent/server/fanout_tick.py) and hands the
  jobs of workers silent for `fanout.stalled_after_seconds` back to the queue (`retry_stalled`).
- A worker runs `fanout.worker_concurrency` jobs at once, each `sweep_part` in a thread of its own.
- A job whose worker was killed is retried by another worker: its part is still `running`, so the
  retry sweeps it again with `resumed` set (findings and actions of the dead attempt are kept, not
  stored twice; an action the dead attempt claimed is not claimable again: the existing claim).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.server.fanout_tick import TASK_NAME
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.store import Store
from costwarden.state.store.parts import PartKey
from costwarden.tools.errors import ToolError

log = logging.getLogger("costwarden.fanout")

_WORKER: dict[str, Any] = {}  # settings, store, policies of this worker process (the task reads them)


def conninfo(database_url: str | None) -> str:
    """The libpq URL procrastinate's psycopg connector takes, from Costwarden's SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    if not database_url:
        raise ToolError("the distributed mode needs database_url on PostgreSQL (postgresql+psycopg://...); "
                        "SQLite is for one process")
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ToolError(f"the distributed mode needs database_url on PostgreSQL, not {url.get_backend_name()}")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_app(settings: Settings) -> Any:
    """A procrastinate App on the settings' database, with the part task registered."""
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(settings.database_url)))
    app.task(name=TASK_NAME, retry=procrastinate.RetryStrategy(max_attempts=settings.fanout.max_attempts - 1,
                                                               wait=1))(sweep_part_job)
    return app


def ensure_queue_schema(app: Any, store: Store) -> bool:
    """Create procrastinate's tables once (under an advisory lock, as several replicas start at once)."""
    from sqlalchemy import text

    with store.engine.connect() as c:
        c.execute(text("SELECT pg_advisory_lock(hashtext('costwarden-procrastinate-schema'))"))
        try:
            if c.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is not None:
                return False
            app.schema_manager.apply_schema()
            return True
        finally:
            c.execute(text("SELECT pg_advisory_unlock(hashtext('costwarden-procrastinate-schema'))"))
            c.commit()


def sweep_part_job(run_id: str, policy: str, account: str, region: str, role_arn: str | None, policy_hash: str,
                   now: str, dry_run: bool) -> str | None:
    """The task: one part, swept by whichever worker took it."""
    from costwarden.agent.engine.part import sweep_part

    settings: Settings = _WORKER["settings"]
    store: Store = _WORKER["store"]
    key = PartKey(run_id, policy, account, region, role_arn)
    lp: LoadedPolicy | None = _WORKER["policies"].get(policy)
    if lp is None or lp.content_hash != policy_hash:  # never act on a policy the scheduler did not plan with
        why = "not loaded by this worker" if lp is None else "a different version on this worker"
        if store.begin_part(key, _WORKER["name"]) is not None:
            from decimal import Decimal

            store.finish_part(key, status="failed", errors=[f"policy {policy} is {why}"], monthly_waste=Decimal(0),
                              projected_savings=Decimal(0), api_calls=[])
        return "failed"
    return sweep_part(settings, lp, key, store=store, dry_run=dry_run, now=datetime.fromisoformat(now),
                      worker=_WORKER["name"], cache=_WORKER.get("cache"))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(settings: Settings, policies: list[LoadedPolicy], *, install_signal_handlers: bool = True) -> int:
    """`costwarden run --role worker`: take part jobs until SIGTERM/SIGINT (procrastinate lets the
    jobs in flight finish, up to shutdown_timeout_seconds)."""
    store = Store(settings.db_url)
    app = make_app(settings)
    from costwarden.agent.engine.worker_cache import WorkerCache

    _WORKER.update(settings=settings, store=store, policies={lp.name: lp for lp in policies}, name=worker_name(),
                   cache=WorkerCache())
    with app.open():
        ensure_queue_schema(app, store)
    n = settings.fanout.worker_concurrency
    log.info("fanout worker started", extra={"worker": _WORKER["name"], "concurrency": n})

    async def work() -> None:
        # procrastinate runs a sync task in the loop's default executor, which holds cpu_count + 4
        # threads (6 on 2 cores): without threads of their own, concurrency above that would wait
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(n, thread_name_prefix="fanout-job"))
        async with app.open_async():
            await app.run_worker_async(concurrency=n, name=_WORKER["name"], wait=True,
                                       update_heartbeat_interval=settings.fanout.heartbeat_seconds,
                                       stalled_worker_timeout=settings.fanout.stalled_after_seconds,
                                       shutdown_graceful_timeout=settings.shutdown_timeout_seconds,
                                       install_signal_handlers=install_signal_handlers, delete_jobs="successful")

    try:
        asyncio.run(work())
    finally:
        store.close()
    return 0


def retry_stalled(settings: Settings) -> int:
    """Hand the running jobs of workers silent for `fanout.stalled_after_seconds` back to the queue.

    On an App of its own: closing an App opened with open_async also closes the sync connector
    the scheduler defers with."""
    app = make_app(settings)
    stalled_after_seconds = settings.fanout.stalled_after_seconds

    async def _go() -> int:
        async with app.open_async():
            stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_seconds))
            for job in stalled:
                await app.job_manager.retry_job(job)
            return len(stalled)

    n = asyncio.run(_go())
    if n:
        log.warning("jobs of a silent worker handed to others", extra={"jobs": n})
    return n


class FanoutScheduler:
    """What the daemon holds in the scheduler and all roles: the queue, opened once; `all` also
    runs a worker in a thread of this process."""

    def __init__(self, settings: Settings, store: Store, policies: list[LoadedPolicy], *, role: str) -> None:
        import threading

        self.settings, self.store = settings, store
        self.app = make_app(settings)
        self.app.open()
        ensure_queue_schema(self.app, store)
        if role == "all":
            threading.Thread(target=run_worker, args=(settings, policies), kwargs={"install_signal_handlers": False},
                             name="fanout-worker", daemon=True).start()

    def enqueue(self, lp: LoadedPolicy) -> None:
        """A tick of one policy: its run and its jobs (the next tick tries again if this one fails)."""
        import time

        from costwarden.agent.server.fanout_tick import enqueue_tick

        started = time.monotonic()
        try:
            run_id, jobs = enqueue_tick(self.settings, [lp], self.store, self.app)
        except Exception as exc:  # noqa: BLE001 - the daemon lives on
            log.error("tick not enqueued", extra={"policy": lp.name, "error": f"{exc.__class__.__name__}: {exc}"})
            return
        log.info("tick enqueued", extra={"run_id": run_id, "policy": lp.name, "jobs": jobs,
                                         "seconds": round(time.monotonic() - started, 3)})

    def figures(self, policies: list[str]) -> Any:
        """The queue's series for /metrics (agent/server/queue_metrics.py)."""
        from costwarden.agent.server.queue_metrics import scheduler_families

        return scheduler_families(self.store.engine, policies,
                                  stalled_after_seconds=self.settings.fanout.stalled_after_seconds)

    def retry_stalled(self) -> None:
        try:
            retry_stalled(self.settings)
        except Exception as exc:  # noqa: BLE001 - tried again at the next check
            log.error("stalled jobs not retried", extra={"error": f"{exc.__class__.__name__}: {exc}"})
