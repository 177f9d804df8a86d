"""Opening the database: the engine, SQLite's settings, URLs fit to print, and reading times back.

Every other part of the store builds on `Database` (a session per short transaction); the record
kinds (runs, actions, decisions) are its subclasses in the modules next to this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from costwarden.state.errors import CostwardenError
from costwarden.state.migrate import SchemaError, ensure_schema


class StoreError(CostwardenError, RuntimeError):
    """The database cannot be opened or written; the message names the URL (without secrets)."""


def safe_url(url: str) -> str:
    """The database URL with its password hidden: the only form that may reach a message or a log."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for messages
        return "<unparseable database url>"


def is_shared(engine: Engine) -> bool:
    """Several replicas may use this database at once (PostgreSQL: leader election, claim leases);
    any other database belongs to one process."""
    return engine.dialect.name == "postgresql"


def as_utc(value: datetime) -> datetime:
    """A time read back from the store, made aware: SQLite hands back naive datetimes, and
    everything the store writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _journal_wal(cur: Any, patience_s: float = 5.0) -> None:
    """Switch to WAL, retrying: two processes opening a new file at once both try to switch, and
    SQLite answers "database is locked" at once there (the busy timeout does not apply)."""
    import sqlite3
    import time

    deadline = time.monotonic() + patience_s
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _enable_sqlite_wal(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=5000")
        _journal_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()


class Database:
    """The engine and its sessions; the schema is brought to head when it is opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url)
            if self.engine.dialect.name == "sqlite":
                _enable_sqlite_wal(self.engine)
            self.migration = ensure_schema(self.engine)  # at head: one SELECT, no Alembic import
        except SchemaError as exc:
            raise SchemaError(f"database {safe_url(url)}: {exc}") from None
        except ImportError as exc:
            raise StoreError(f"cannot open database {safe_url(url)}: driver not installed ({exc})") from None
        except (SQLAlchemyError, OSError) as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot open database {safe_url(url)}: {str(detail).splitlines()[0]}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which each statement is a transaction of its own: one round trip each,
        where a session adds a BEGIN and a COMMIT round trip to every transaction (for the hot paths
        of a fan-out job, state/store/parts.py)."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            yield c

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for one read-only statement, on an `autocommit` connection (no BEGIN and COMMIT
        round trips): for the reads every fan-out job makes."""
        with self.autocommit() as c, Session(bind=c, expire_on_commit=False) as s:
            yield s

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except SQLAlchemyError:
            return False

    def close(self) -> None:
        self.engine.dispose()
