"""The daemon: APScheduler wakes one sweep per policy on the policy's own schedule.

- Jobs live in a SQLAlchemy job store in Costwarden's own database, so schedules survive
  restarts; a job is added only when missing or when its schedule changed (re-adding it at
  every start would reset its interval clock).
- coalesce + max_instances=1: a sweep never overlaps itself, and missed ticks run once.
- One sweep at a time per process (a one-thread executor): at start-up every
  policy is due at once, and parallel sweeps only raised peak memory (over 200 MB with the
  default pack) and the rate cloud APIs see, on a daemon whose sweeps take seconds. A policy
  that waits runs as soon as the one before it ends; a cron tick that starts more than
  MISFIRE_GRACE_S (300 s) late is skipped for the next one, an interval tick never is.
- Several replicas may share one PostgreSQL database: only the holder of the leader lock
  schedules, the others stand by and serve HTTP.
- Start-up settles what a crash left open (agent/engine/reconcile.py) before any sweep.
- SIGTERM/SIGINT: no new sweeps or clicks; the sweep in flight and the executions of clicks
  already answered share `shutdown_timeout_seconds`, then the process exits anyway (what they
  left approved or pending is settled at the next start).
- SIGHUP, or a changed policy file, reloads the policies without a restart.
- With `slack.app_token`, Slack clicks also arrive over Socket Mode (agent/server/slack_socket.py):
  every replica holds a connection, as every replica serves the HTTP route. /readyz shows the
  link as a detail but stays ready without it: the HTTP routes and sweeps still work, and
  taking the replica out of a Service would not bring the outbound socket back.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.server.leader import LeaderLock
from costwarden.agent.server.maintenance import expire_approvals, housekeeping, settle_stale_claims
from costwarden.agent.server.metrics import ProcessCounters, render
from costwarden.agent.engine.reconcile import settle_at_start
from costwarden.agent.server.http import HttpServer, Limits, Response
from costwarden.agent.server.job_refs import rewrite_moved_job_refs
from costwarden.agent.server.otlp import otlp_routes
from costwarden.policies.errors import PolicyError
from costwarden.policies.loader import LoadedPolicy, default_pack_path, load_policies
from costwarden.state.store import Store

log = logging.getLogger("costwarden.daemon")

_CURRENT: Daemon | None = None
_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A cron tick ("0 6 * * 1-5") that could not start on time (the one sweep thread was busy, the
# process was down) still runs if it is at most this late; later, it is skipped for the next tick:
# a 06:00 sweep should not start at 14:00. An interval tick ("every 2h") has no such meaning, so it
# runs whenever the thread frees up. coalesce folds several missed ticks into one run either way.
MISFIRE_GRACE_S = 300


def misfire_grace_for(schedule: str) -> int | None:
    return None if _EVERY.match(schedule) else MISFIRE_GRACE_S


def sweep_policy_job(policy_name: str) -> None:
    """Module-level, so the persistent job store can import it by reference."""
    daemon = _CURRENT
    if daemon is None:
        log.warning("no daemon in this process; skipping %s", policy_name)
        return
    daemon.sweep(policy_name)


def schedule_of(lp: LoadedPolicy, settings: Settings) -> str:
    return (lp.policy.schedule or f"every {settings.sweep_interval_minutes * 60:g}s").strip()


def trigger_for(schedule: str) -> Any:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    m = _EVERY.match(schedule)
    if m:
        return IntervalTrigger(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2)], timezone=timezone.utc)
    return CronTrigger.from_crontab(schedule, timezone=timezone.utc)


def policy_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths or [default_pack_path()]:
        p = Path(p)
        out.extend(sorted([*p.glob("*.yml"), *p.glob("*.yaml")]) if p.is_dir() else [p])
    return out


class Daemon:
    def __init__(self, settings: Settings, *, host: str, port: int, poll_seconds: float = 2.0,
                 http_limits: Limits | None = None, role: str = "single") -> None:
        self.settings = settings
        self.role = role  # single | scheduler | all (agent/server/fanout.py: a tick becomes worker jobs)
        self.fanout: Any = None
        self.counters = ProcessCounters()
        # the port first: "in use" must stop the start before the store migrates anything
        self.http = HttpServer(host, port, {}, limits=http_limits, counters=self.counters)
        try:
            self.http.routes.update(otlp_routes(settings, host, self.counters))  # POST /v1/traces when otlp.enabled
            self._open(settings, poll_seconds)
        except BaseException:
            self.http.stop()  # the port is not held by a daemon that failed to start
            raise

    def _open(self, settings: Settings, poll_seconds: float) -> None:
        self.store = Store(settings.db_url)
        self.policy_paths = list(settings.policies)
        self.policies = {lp.name: lp for lp in load_policies(self.policy_paths)}
        self._mtimes = self._policy_mtimes()
        self.state: dict[str, Any] = {"leader": False, "dry_run": settings.dry_run}
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.poll_seconds = poll_seconds
        self.lock = LeaderLock(self.store.engine)
        self.scheduler: Any = None
        self.socket_mode: Any = None  # agent.slack_socket.SocketModeListener, with slack.app_token
        self.interactions: Any = None  # the HTTP route's handler: its follow-ups are joined at shutdown
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self._next_expiry_check = 0.0
        self._next_housekeeping = 0.0
        self._next_stalled_check = 0.0
        self.http.routes.update({
            ("POST", "/slack/interactions"): self._slack_route(),
            ("GET", "/healthz"): lambda _h, _b: Response(200, {"status": "ok"}),
            ("GET", "/readyz"): self._readyz,
            ("GET", "/metrics"): lambda _h, _b: Response(
                200, render(self.store, self.counters, self.state,
                            self.socket_mode.stats() if self.socket_mode is not None else None,
                            (lambda: self.fanout.figures(sorted(self.policies))) if self.fanout is not None else None),
                "text/plain; version=0.0.4; charset=utf-8"),
        })

    # --- HTTP ------------------------------------------------------------------------------
    def _slack_route(self) -> Any:
        if self.settings.slack.signing_secret is None:
            return lambda _h, _b: Response(503, {"error": "Slack approvals are not configured (slack.signing_secret)"})
        from costwarden.agent.server.slack_http import InteractionHandler

        self.interactions = InteractionHandler(self.settings, self.store, lambda: self.policies, counters=self.counters)
        return self.interactions

    def _start_socket_mode(self) -> None:
        if self.settings.slack.app_token is None:
            return
        from costwarden.agent.server.slack_socket import SocketModeListener

        self.socket_mode = SocketModeListener(self.settings, self.store, lambda: self.policies, counters=self.counters)
        self.socket_mode.start()

    def _readyz(self, _h: dict[str, str], _b: bytes) -> Response:
        db = self.store.ping()
        scheduling = bool(self.scheduler and self.scheduler.running)
        role = "leader" if self.state["leader"] else "standby"
        settled = self.state.get("elected", False)  # not ready before the first leader election
        ready = db and settled and (scheduling or role == "standby") and not self.stop_event.is_set()
        return Response(200 if ready else 503, {"status": "ready" if ready else "not ready", "database": db,
                                                "scheduler": scheduling, "role": role,
                                                "policies": sorted(self.policies), "dry_run": self.settings.dry_run,
                                                "slack_socket": self._socket_detail()})

    def _socket_detail(self) -> dict[str, Any]:
        """Socket Mode for /readyz: informative only, never a reason to be not ready."""
        if self.settings.slack.app_token is None:
            return {"enabled": False}
        if self.socket_mode is None:  # configured, not started yet
            return {"enabled": True, "connected": False}
        s = self.socket_mode.stats()
        return {"enabled": True, **{k: s[k] for k in ("connected", "connected_since", "reconnects", "last_error")}}

    # --- sweeps ----------------------------------------------------------------------------
    def sweep(self, policy_name: str) -> None:
        if self.stop_event.is_set():
            return
        lp = self.policies.get(policy_name)
        if lp is None:
            log.info("policy %s is gone; skipping", policy_name)
            return
        with self._inflight_lock:
            self._inflight += 1
        started = time.monotonic()
        if self.fanout is not None:  # the distributed mode: the tick becomes worker jobs
            try:
                return self.fanout.enqueue(lp)
            finally:
                with self._inflight_lock:
                    self._inflight -= 1
        try:
            from costwarden.agent.engine.sweep import run_sweep  # LangGraph costs ~1 s to import: not on the path to ready

            r = run_sweep(self.settings, [lp], dry_run=self.settings.dry_run, store=self.store, trigger="schedule",
                          progress=lambda m: log.debug(m))
        except Exception as exc:  # noqa: BLE001 - a failed sweep is recorded; the daemon lives on
            self.counters.add("sweeps", {"failed": 1})
            log.error("sweep failed", extra={"policy": policy_name, "error": f"{exc.__class__.__name__}: {exc}"})
            return
        finally:
            with self._inflight_lock:
                self._inflight -= 1
        self.counters.add("sweeps", {r.status: 1})
        self.counters.add("api_calls", r.api_calls)
        if r.errors:
            self.counters.add("api_errors", {"collect": len(r.errors)})
        for a in r.actions:
            log.info("decision", extra={"run_id": r.run_id, "policy": a.policy, "resource": a.resource_key,
                                        "action_id": a.id, "action": a.action, "decision": a.decision,
                                        "status": a.status, "reason": a.reason})
        log.info("sweep finished", extra={"run_id": r.run_id, "policy": policy_name, "status": r.status,
                                          "findings": len(r.findings), "monthly_waste_usd": str(r.monthly_waste_usd),
                                          "seconds": round(time.monotonic() - started, 3), "errors": r.errors})
        for warning in r.warnings:  # unpriced types, an unreachable price source...: visible without the DB
            log.warning("sweep warning", extra={"run_id": r.run_id, "policy": policy_name, "warning": warning})

    # --- scheduling ------------------------------------------------------------------------
    def _become_leader(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        # Only the leader sweeps, so a run still `running` when leadership changes hands was cut
        # off with its process; before the lock is ours, it may be another replica's live sweep.
        # Approved actions settle within the policies this process loaded, as they are now.
        counts = settle_at_start(self.settings, self.store, self.policies)
        if any(counts.values()):
            log.info("settled what a previous process left open", extra=counts)
        moved = rewrite_moved_job_refs(self.store.engine)
        if moved:
            log.info("kept %d scheduled jobs whose function moved in this release", len(moved))
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self.store.engine, tablename="apscheduler_jobs")},
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=timezone.utc)
        self.scheduler.start()
        self.sync_jobs()
        self.state["leader"] = True
        log.info("leader: scheduling %d policies", len(self.policies))

    def _step_down(self) -> None:
        self.state["leader"] = False
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    def sync_jobs(self) -> None:
        wanted = {f"policy:{name}": lp for name, lp in self.policies.items()}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("policy:") and job.id not in wanted:
                job.remove()
                log.info("unscheduled %s", job.id)
        now = datetime.now(timezone.utc)
        for job_id, lp in wanted.items():
            sched = schedule_of(lp, self.settings)
            job = self.scheduler.get_job(job_id)
            if job is None:
                self.scheduler.add_job(sweep_policy_job, trigger_for(sched), args=[lp.name], id=job_id, name=sched,
                                       next_run_time=now, misfire_grace_time=misfire_grace_for(sched))
                log.info("scheduled %s %s", lp.name, sched)
                continue
            if job.name != sched:
                job.modify(name=sched)
                job.reschedule(trigger_for(sched))
                log.info("rescheduled %s %s", lp.name, sched)
            if job.misfire_grace_time != misfire_grace_for(sched):  # jobs stored by a release without the limit
                job.modify(misfire_grace_time=misfire_grace_for(sched))

    def _expire_approvals(self) -> None:
        expire_approvals(self.settings, self.store)
        settle_stale_claims(self.settings, self.store, self.policies)

    def _housekeeping(self) -> None:
        housekeeping(self.settings, self.store)

    # --- reload ----------------------------------------------------------------------------
    def _policy_mtimes(self) -> dict[str, float]:
        out = {}
        for f in policy_files(self.policy_paths):
            try:
                out[str(f)] = f.stat().st_mtime
            except OSError:
                out[str(f)] = -1.0
        return out

    def reload(self) -> None:
        self._mtimes = self._policy_mtimes()
        try:
            fresh = {lp.name: lp for lp in load_policies(self.policy_paths)}
        except PolicyError as exc:
            log.error("policy reload refused; keeping the policies in force", extra={"error": str(exc)})
            return
        self.policies = fresh
        if self.scheduler is not None:
            self.sync_jobs()
        log.info("policies reloaded", extra={"policies": sorted(fresh)})

    # --- main loop -------------------------------------------------------------------------
    def run(self) -> int:
        global _CURRENT
        _CURRENT = self
        self.http.start()
        if self.role != "single":
            from costwarden.agent.server.fanout import FanoutScheduler

            self.fanout = FanoutScheduler(self.settings, self.store, list(self.policies.values()), role=self.role)
        self._start_socket_mode()
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.reload_event.set())
        log.info("costwarden daemon listening", extra={"port": self.http.port, "dry_run": self.settings.dry_run,
                                                       "policies": sorted(self.policies)})
        try:
            while not self.stop_event.is_set():
                if not self.state["leader"]:
                    if self.lock.try_acquire():
                        self._become_leader()
                elif not self.lock.still_held():
                    self._step_down()
                self.state["elected"] = True
                if self.state["leader"] and time.monotonic() >= self._next_expiry_check:
                    self._next_expiry_check = time.monotonic() + 60
                    self._expire_approvals()
                if self.state["leader"] and self.fanout is not None and time.monotonic() >= self._next_stalled_check:
                    self._next_stalled_check = time.monotonic() + self.settings.fanout.heartbeat_seconds
                    self.fanout.retry_stalled()
                if self.state["leader"] and time.monotonic() >= self._next_housekeeping:
                    self._next_housekeeping = time.monotonic() + 3600
                    self._housekeeping()
                if self.reload_event.is_set() or self._policy_mtimes() != self._mtimes:
                    self.reload_event.clear()
                    self.reload()
                self.stop_event.wait(self.poll_seconds)
        finally:
            code = self.shutdown()
        return code

    def shutdown(self) -> int:
        log.info("stopping: no new sweeps", extra={"timeout_seconds": self.settings.shutdown_timeout_seconds})
        self.stop_event.set()
        done = threading.Event()

        def _drain() -> None:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
            done.set()

        deadline = time.monotonic() + self.settings.shutdown_timeout_seconds
        threading.Thread(target=_drain, daemon=True).start()
        finished = done.wait(self.settings.shutdown_timeout_seconds)
        self.lock.release()
        if self.socket_mode is not None:
            self.socket_mode.stop()
        self.http.stop()
        # no click can arrive now; approvals already answered finish their execution in the same budget
        cut = sum(i.join_followups(deadline - time.monotonic()) for i in (
            self.interactions, getattr(self.socket_mode, "interactions", None)) if i is not None)
        if not finished or cut:
            log.warning("work was still running at the shutdown deadline; exiting anyway. What it left approved "
                        "or pending is settled at the next start.", extra={"sweep": not finished, "approvals": cut})
            logging.shutdown()
            sys.stderr.flush()
            os._exit(0)  # worker threads would otherwise keep the interpreter alive
        self.store.close()
        log.info("costwarden daemon stopped")
        return 0


def run_once(settings: Settings, policies: list[LoadedPolicy]) -> int:
    """`costwarden run --once`: settle leftovers, one sweep of every policy, exit."""
    from costwarden.agent.engine.sweep import run_sweep

    store = Store(settings.db_url)
    lock = LeaderLock(store.engine)
    if not lock.try_acquire():
        from costwarden.tools.errors import ToolError

        raise ToolError("a daemon is leading on this database; stop it or let it sweep (run --once would race it)")
    try:
        settle_at_start(settings, store, {lp.name: lp for lp in policies})
        r = run_sweep(settings, policies, dry_run=settings.dry_run, store=store, trigger="once",
                      progress=lambda m: log.info(m))
    finally:
        lock.release()
    log.info("sweep finished", extra={"run_id": r.run_id, "status": r.status, "findings": len(r.findings),
                                      "monthly_waste_usd": str(r.monthly_waste_usd), "errors": r.errors})
    for warning in r.warnings:
        log.warning("sweep warning", extra={"run_id": r.run_id, "warning": warning})
    store.close()
    return 0 if not r.errors else 1
