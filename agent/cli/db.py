"""`costwarden db upgrade|current|history`: the database schema (Alembic migrations under state/).

Every start-up migrates on its own; these are for deploy steps and for looking without changing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from costwarden.agent.cli.options import ConfigOpt, StateOpt, cli_settings

db_app = typer.Typer(no_args_is_help=True, help="The database schema (Alembic): upgrade, current revision, history.")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """Bring the database to this release's schema; every start-up does the same, so this is for deploy steps."""
    from costwarden.state.store import Store, safe_url

    settings = cli_settings(config, state_dir, None)
    store = Store(settings.db_url)  # migrates under the migration lock, or refuses a newer schema
    m = store.migration
    store.close()
    what = f"already at {m.after} (head)" if m.path == "head" else f"{m.path}: {m.before or 'empty'} -> {m.after}"
    sys.stdout.write(f"{safe_url(settings.db_url)}: {what}\n")


@db_app.command("current")
def db_current(config: ConfigOpt = None, state_dir: StateOpt = None,
               check: Annotated[bool, typer.Option("--check", help="Exit 1 unless the database is at head.")] = False) -> None:
    """Print the database's schema revision, read-only (nothing is created or migrated)."""
    from costwarden.state.migrate import HEAD, unknown_revision_message
    from costwarden.state.store import safe_url

    settings = cli_settings(config, state_dir, None)
    state = _schema_state(settings.db_url)
    status = state.status
    what = {"head": f"{HEAD} (head)",
            "behind": f"{', '.join(state.revisions)} (behind: head is {HEAD}; `costwarden db upgrade` or any start-up migrates it)",
            "pre-alembic": f"none: tables from before migrations; the next start-up stamps and upgrades it to {HEAD}",
            "empty": f"none: no Costwarden tables yet; the first start-up creates them at {HEAD}",
            "ahead": unknown_revision_message(state.revisions)}[status]
    sys.stdout.write(f"{safe_url(settings.db_url)}: {what}\n")
    if check and status != "head":
        raise typer.Exit(1)


def _schema_state(url: str) -> Any:
    """Read a database's schema state without creating it (a missing SQLite file stays missing)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from costwarden.state.migrate import SchemaState, inspect_schema
    from costwarden.state.store import StoreError, safe_url

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and not Path(url.removeprefix("sqlite:///")).exists():
        return SchemaState((), False, frozenset())
    try:
        engine = create_engine(url)
        try:
            return inspect_schema(engine)
        finally:
            engine.dispose()
    except ImportError as exc:
        raise StoreError(f"cannot open database {safe_url(url)}: driver not installed ({exc})") from None
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise StoreError(f"cannot open database {safe_url(url)}: {str(detail).splitlines()[0]}") from None


@db_app.command("history")
def db_history() -> None:
    """List this release's migrations, oldest first (from the scripts; no database needed)."""
    from costwarden.state.migrate import HEAD, history

    for rev, down, doc in history():
        sys.stdout.write(f"{down or '<base>'} -> {rev}{' (head)' if rev == HEAD else ''}: {doc.splitlines()[0] if doc else ''}\n")
