"""Bring a database to the schema this release expects, with Alembic, at every store start-up.

Why this shape:

- The common case (already at head) costs one `SELECT version_num FROM alembic_version` and does
  not import Alembic: the known revisions are listed in state/migrations/__init__.py.
- Anything else runs in one transaction that first takes a lock (a PostgreSQL advisory lock, or
  SQLite's write lock via BEGIN IMMEDIATE), reads the state again, then creates, stamps or
  upgrades. Replicas starting together wait for each other; the loser finds the work done.
  PostgreSQL's DDL is transactional, so a crash mid-upgrade leaves the old schema intact.
- A fresh database is upgraded from base rather than made by `create_all` and stamped: one path
  to every schema, so the migrations users' databases go through run on every fresh database
  (and in every test), and a broken one cannot hide behind `create_all`.
- A database from before Alembic (our tables, no alembic_version) is completed the way its own
  release did at start-up (missing tables created, from the frozen baseline), stamped 0001 or
  0002 by whether findings.tags exists, then upgraded.
- A revision this release does not know means a newer release migrated the database: refuse,
  never run old code against a newer schema.
- Tables that are not ours (LangGraph checkpoints, APScheduler jobs) are never reflected,
  compared or touched (`include_name`, `include_object`).
"""

from __future__ import annotations

import logging
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from costwarden.state.errors import CostwardenError
from costwarden.state.migrations import HEAD, REVISIONS
from costwarden.state.models import Base

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("costwarden.store")

# Different from the leader lock's key (agent/server/leader.py): a replica that leads must still be able
# to migrate, and one waiting on a migration must not look like a leader.
MIGRATION_LOCK_KEY = zlib.crc32(b"costwarden-migrations")
VERSION_TABLE = "alembic_version"
SCRIPT_LOCATION = "costwarden.state:migrations"  # resolved inside the installed package: no alembic.ini, no paths
OUR_TABLES: frozenset[str] = frozenset(Base.metadata.tables)
# Alembic's `context` and `op` are module-global proxies: two migrations in one process at once
# (stores opened from several threads) would trample each other, whatever the database lock says.
_IN_PROCESS = threading.Lock()


class SchemaError(CostwardenError, RuntimeError):
    """The database's schema cannot be used or brought up to date by this release."""


@dataclass(frozen=True)
class SchemaState:
    """What a database holds, read without changing it."""

    revisions: tuple[str, ...]  # alembic_version rows; empty when the table is absent or empty
    has_version_table: bool
    our_tables: frozenset[str]

    @property
    def status(self) -> str:
        """head | behind | ahead | pre-alembic | empty."""
        return classify(self.revisions, bool(self.our_tables))


@dataclass(frozen=True)
class Migration:
    """What `ensure_schema` did: `path` is head (nothing), fresh, pre-alembic or upgrade."""

    before: str | None
    after: str
    path: str


def classify(revisions: tuple[str, ...] | list[str], has_our_tables: bool) -> str:
    """The start-up decision as a pure function of what the database holds."""
    if any(r not in REVISIONS for r in revisions):
        return "ahead"
    if tuple(revisions) == (HEAD,):
        return "head"
    if revisions:
        return "behind"
    return "pre-alembic" if has_our_tables else "empty"


def unknown_revision_message(revisions: tuple[str, ...] | list[str]) -> str:
    unknown = ", ".join(r for r in revisions if r not in REVISIONS)
    return (f"schema revision {unknown} is newer than this costwarden knows (its newest is {HEAD}): "
            f"a newer release migrated this database; upgrade costwarden rather than run an older one against it")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Reflect only our tables: autogenerate and compare never even read anyone else's."""
    return name in OUR_TABLES if type_ == "table" else True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Compare and generate only our tables and what belongs to them."""
    if type_ == "table":
        return name in OUR_TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name in OUR_TABLES


def _read_versions(conn: Connection) -> tuple[str, ...]:
    return tuple(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def read_state(conn: Connection) -> SchemaState:
    """The database's schema state, by inspection (safe inside a PostgreSQL transaction)."""
    insp = inspect(conn)
    names = set(insp.get_table_names())
    has_version = VERSION_TABLE in names
    return SchemaState(_read_versions(conn) if has_version else (), has_version, frozenset(names & OUR_TABLES))


def inspect_schema(engine: Engine) -> SchemaState:
    """Read-only: for `costwarden db current`."""
    with engine.connect() as conn:
        return read_state(conn)


def ensure_schema(engine: Engine) -> Migration:
    """Bring the database to HEAD, or refuse one migrated by a newer release (SchemaError)."""
    with engine.connect() as conn:  # an unreachable database fails here, once
        try:
            fast: tuple[str, ...] | None = _read_versions(conn)
        except DBAPIError:  # no alembic_version table (yet): the slow path looks properly
            fast = None
    if fast is not None:
        status = classify(fast, True)
        if status == "head":
            return Migration(HEAD, HEAD, "head")
        if status == "ahead":
            raise SchemaError(unknown_revision_message(fast))
    return _migrate(engine)


def _lock(conn: Connection) -> None:
    """Serialise migrations across processes for the rest of this transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # pysqlite leaves BEGIN to us: take the write lock now


def alembic_config(conn: Connection | None = None) -> Config:
    """Alembic's Config built in code, pointing at the migrations inside this package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _migrate(engine: Engine) -> Migration:
    from alembic import command
    from alembic.util import CommandError

    from costwarden.state.migrations.baseline import baseline_metadata

    try:
        with _IN_PROCESS, engine.begin() as conn:
            _lock(conn)
            state = read_state(conn)  # again, under the lock: another replica may have done it
            status = state.status
            if status == "ahead":
                raise SchemaError(unknown_revision_message(state.revisions))
            if status == "head":
                return Migration(HEAD, HEAD, "head")
            cfg = alembic_config(conn)
            before: str | None = state.revisions[0] if state.revisions else None
            if status == "pre-alembic":
                baseline_metadata().create_all(conn, checkfirst=True)  # what that release did at start-up
                columns = {c["name"] for c in inspect(conn).get_columns("findings")}
                before = "0002" if "tags" in columns else "0001"
                command.stamp(cfg, before)
            command.upgrade(cfg, "head")
    except CommandError as exc:
        raise SchemaError(f"migration failed: {str(exc).splitlines()[0]}") from None
    path = {"empty": "fresh", "pre-alembic": "pre-alembic"}.get(status, "upgrade")
    log.info("database schema %s: %s -> %s", path, before or "empty", HEAD)
    return Migration(before, HEAD, path)


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down revision, first line of its docstring), oldest first, from the scripts."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    rows = [(s.revision, s.down_revision if isinstance(s.down_revision, str) else None, (s.doc or "").strip())
            for s in scripts.walk_revisions()]
    return list(reversed(rows))
