"""Checks `costwarden run` makes before it binds a port or migrates a database.

A file that is not what it should be is a one-line error at start-up, not a traceback in the
middle of the first approval the daemon resumes hours later.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from costwarden.agent.config import Settings
from costwarden.state.errors import CostwardenError


class StartupError(CostwardenError):
    """Something the daemon needs is unusable; told before anything changes."""


def check_sqlite_file(path: Path, what: str) -> None:
    """Raise StartupError unless `path` is missing (it will be created) or an SQLite database."""
    if not path.exists():
        return
    if not path.is_file():
        raise StartupError(f"{what} {path} is not a file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StartupError(f"{what} {path} is unreadable ({exc}): restore it from a backup, or move it aside "
                           "to start afresh") from None


def preflight(settings: Settings) -> None:
    """The Slack workspace pin, and the local SQLite files the daemon will open (store, checkpoints)."""
    slack = settings.slack
    if slack.signing_secret is not None and slack.team_id is None:
        raise StartupError("slack.signing_secret is set but slack.team_id is not: set it to your workspace's T... id "
                           "(COSTWARDEN_SLACK__TEAM_ID), or any workspace that installs the app could approve")
    if settings.database_url is None:
        check_sqlite_file(settings.state_dir / "costwarden.db", "the database")
    # checkpoints live in PostgreSQL with a postgresql:// database_url, else in this file
    # (agent/engine/checkpoints.py; not imported here: it brings LangGraph along)
    if not (settings.database_url or "").startswith("postgresql"):
        check_sqlite_file(settings.checkpoint_path, "the checkpoint store")
