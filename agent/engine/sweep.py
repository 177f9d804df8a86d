"""One sweep: open the store and checkpointer, run the graph on a new thread (thread id = run id).

The checkpointer follows `database_url`: on PostgreSQL the LangGraph checkpoints live in that
database too (langgraph-checkpoint-postgres), so every replica sees every paused thread; on
anything else they stay in `<state_dir>/checkpoints.sqlite`.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from costwarden.agent.config import Settings
from costwarden.agent.engine.context import Providers, SweepContext
from costwarden.agent.engine.graph import build_graph
from costwarden.agent.engine.nodes.record import totals
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.clock import clock_at
from costwarden.state.store import Store, StoreError, safe_url
from costwarden.tools.pricing import PriceBook


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


def pg_conninfo(database_url: str | None) -> str | None:
    """The libpq conninfo for a PostgreSQL SQLAlchemy URL, or None for any other URL.

    psycopg's own `connect()` does not take SQLAlchemy's `postgresql+psycopg://` form, so the
    one setting the store uses is translated here rather than asking for a second URL. Every
    value is single-quoted (backslashes and quotes escaped, as libpq wants), and query
    parameters (`sslmode`, `host` for a socket directory, ...) pass through as the keywords
    SQLAlchemy's psycopg dialect would hand libpq too.
    """
    if not database_url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        raise StoreError(f"database_url is not a valid SQLAlchemy URL: {safe_url(database_url)}") from None
    if url.get_backend_name() != "postgresql":
        return None
    params: dict[str, str] = {}
    for key, value in (("host", url.host), ("port", url.port), ("user", url.username),
                       ("password", url.password), ("dbname", url.database)):
        if value is not None and value != "":
            params[key] = str(value)
    for key, value in url.query.items():
        params[key] = ",".join(value) if isinstance(value, tuple) else str(value)
    return " ".join(f"{k}='{_libpq_quote(v)}'" for k, v in params.items())


def _libpq_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


@contextmanager
def open_checkpointer(settings: Settings) -> Iterator[BaseCheckpointSaver[Any]]:
    """The LangGraph checkpointer for sweep and approval threads: PostgreSQL when
    `database_url` is PostgreSQL (shared by all replicas), else the SQLite file in `state_dir`."""
    conninfo = pg_conninfo(settings.database_url)
    if conninfo is not None:
        assert settings.database_url is not None
        with _postgres_saver(conninfo, settings.database_url) as saver:
            yield saver
        return
    settings.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(settings.checkpoint_path), check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        yield SqliteSaver(conn)
    finally:
        conn.close()


# Serialises the checkpoint-table migrations across replicas: PostgresSaver.setup() is not safe
# to run twice at once (two CREATE TABLE IF NOT EXISTS can collide, both insert the migration
# version). A different key from the scheduler's leader lock (agent/server/leader.py).
CHECKPOINT_SETUP_LOCK_KEY = zlib.crc32(b"costwarden-checkpoint-setup")
_pg_ready: set[str] = set()  # conninfos already set up by this process
_pg_ready_lock = threading.Lock()


@contextmanager
def _postgres_saver(conninfo: str, database_url: str) -> Iterator[BaseCheckpointSaver[Any]]:
    """A PostgresSaver on its own connection, tables set up once per process and database.

    Imported here, not at module level: only a PostgreSQL deployment pays for psycopg and the
    saver. The connection is autocommit with dict rows, as PostgresSaver requires, and the
    serializer is strict (only known-safe types are revived): a shared database is written by
    every replica, so a checkpoint must never be able to name code to run.
    """
    try:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
        from psycopg.rows import dict_row
    except ImportError as exc:
        missing = "psycopg" if (exc.name or "").startswith("psycopg") else "langgraph-checkpoint-postgres"
        raise StoreError(
            f"database_url {safe_url(database_url)} is PostgreSQL, so the LangGraph checkpoints go there too, "
            f"but {missing} is not installed: pip install 'costwarden[postgres]'") from None
    where = safe_url(database_url)
    try:
        conn = psycopg.Connection.connect(conninfo, autocommit=True, prepare_threshold=0, row_factory=dict_row)
    except psycopg.Error as exc:
        raise StoreError(f"cannot open LangGraph checkpoints on {where}: {_first_line(exc)}") from None
    try:
        saver = PostgresSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
        try:
            _setup_once(conn, saver, conninfo)
        except psycopg.Error as exc:
            raise StoreError(f"cannot create the LangGraph checkpoint tables on {where}: {_first_line(exc)}") from None
        yield saver
    finally:
        conn.close()


def _setup_once(conn: Any, saver: Any, conninfo: str) -> None:
    """Run the saver's migrations once per process and database (every approval click opens a
    checkpointer), under an advisory lock so replicas starting together take turns."""
    with _pg_ready_lock:
        if conninfo in _pg_ready:
            return
        conn.execute("SELECT pg_advisory_lock(%s)", (CHECKPOINT_SETUP_LOCK_KEY,))
        try:
            saver.setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (CHECKPOINT_SETUP_LOCK_KEY,))
        _pg_ready.add(conninfo)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def run_sweep(settings: Settings, policies: list[LoadedPolicy], *, dry_run: bool, store: Store | None = None,
              trigger: str = "cli", progress: Callable[[str], None] | None = None,
              now: datetime | None = None) -> SweepResult:
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
        return _run(settings, policies, store, own_store, ctx, run_id=run_id, dry_run=dry_run, trigger=trigger)


def _run(settings: Settings, policies: list[LoadedPolicy], store: Store, own_store: bool, ctx: SweepContext, *,
         run_id: str, dry_run: bool, trigger: str) -> SweepResult:
    providers = ctx.providers
    store.start_run(run_id, dry_run=dry_run, policies=[p.name for p in policies], trigger=trigger)
    try:
        with open_checkpointer(settings) as saver:
            graph = build_graph(saver)
            final: dict[str, Any] = graph.invoke(
                {"run_id": run_id, "dry_run": dry_run, "errors": [], "warnings": []},
                {"configurable": {"thread_id": run_id}}, context=ctx)
        waiting = [a["id"] for a in final.get("actions", []) if a["status"] == "awaiting_approval"]
        if waiting:
            from costwarden.agent.engine.approvals import open_threads

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
        inventoried=final.get("inventoried", 0), errors=final.get("errors", []),
        warnings=[*final.get("warnings", []), *ctx.prices.warnings],  # e.g. the Price List API unreachable
        api_calls=dict(calls), refused_calls=dict(refused),
        priority=final.get("priority", []), llm_calls=llm_calls, llm_cost_usd=llm_cost,
    )
