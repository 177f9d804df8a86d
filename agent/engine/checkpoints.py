"""Where LangGraph checkpoints live, and how long.

Only threads that can pause for a human are checkpointed: the per-action approval threads
(agent/engine/approvals.py). The checkpointer follows `database_url`: on PostgreSQL the
checkpoints live in that database too (langgraph-checkpoint-postgres), so every replica sees
every paused thread; on anything else they stay in `<state_dir>/checkpoints.sqlite`.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from costwarden.agent.config import Settings
from costwarden.state.errors import first_line
from costwarden.state.store import StoreError, safe_url


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
    """The LangGraph checkpointer for approval threads: PostgreSQL when `database_url` is
    PostgreSQL (shared by all replicas), else the SQLite file in `state_dir`."""
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
        raise StoreError(f"cannot open LangGraph checkpoints on {where}: {first_line(exc)}") from None
    try:
        saver = PostgresSaver(conn, serde=JsonPlusSerializer(allowed_msgpack_modules=None))
        try:
            _setup_once(conn, saver, conninfo)
        except psycopg.Error as exc:
            raise StoreError(f"cannot create the LangGraph checkpoint tables on {where}: {first_line(exc)}") from None
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


def thread_ids(saver: BaseCheckpointSaver[Any]) -> list[str]:
    """Every thread that has a checkpoint in this saver.

    LangGraph has no public call for this, and `saver.list(None)` would read every checkpoint
    with its values (PostgresSaver fetches them all at once). Both savers keep one row per
    checkpoint in a `checkpoints` table with a `thread_id` column, so one query answers it.
    """
    query = "SELECT DISTINCT thread_id FROM checkpoints ORDER BY thread_id"
    if isinstance(saver, SqliteSaver):
        saver.setup()  # a file no thread has written to yet has no tables
        with saver.cursor(transaction=False) as cur:
            cur.execute(query)
            return [row[0] for row in cur.fetchall()]
    rows = saver.conn.execute(query).fetchall()  # type: ignore[attr-defined]  # PostgresSaver, dict rows
    return [row["thread_id"] for row in rows]
