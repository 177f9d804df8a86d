"""The daemon loop: APScheduler wakes a sweep of every policy on an interval.

Sweeps never overlap (max_instances=1) and missed ticks coalesce into one. SIGTERM and
SIGINT stop the scheduler after the sweep in flight finishes.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from agent.config import Settings
from agent.sweep import run_sweep
from policies.loader import LoadedPolicy

log = logging.getLogger("costwarden.daemon")

_job_args: dict[str, Any] = {}


def sweep_job() -> None:
    """Module-level so a persistent job store can import it."""
    settings: Settings = _job_args["settings"]
    policies: list[LoadedPolicy] = _job_args["policies"]
    try:
        r = run_sweep(settings, policies, dry_run=settings.dry_run, trigger="schedule",
                      progress=lambda m: log.info(m))
        log.info("sweep %s %s: %d findings, $%s/month waste, %d actions", r.run_id, r.status, len(r.findings),
                 r.monthly_waste_usd, len(r.actions))
    except Exception:  # noqa: BLE001 - a failed sweep is logged and the daemon lives on
        log.exception("sweep failed")


def serve(settings: Settings, policies: list[LoadedPolicy], *, once: bool = False) -> None:
    _job_args.update(settings=settings, policies=policies)
    log.info("costwarden daemon starting: %d policies, dry_run=%s, every %g min", len(policies),
             settings.dry_run, settings.sweep_interval_minutes)
    if once:
        sweep_job()
        return
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(sweep_job, "interval", minutes=settings.sweep_interval_minutes, id="sweep",
                      max_instances=1, coalesce=True, misfire_grace_time=300, next_run_time=_now())

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the sweep in flight", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    scheduler.start()
    log.info("costwarden daemon stopped")


def _now() -> Any:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
