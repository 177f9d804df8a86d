"""Alembic migrations of Costwarden's own tables, run by the store at start-up (state/migrate.py).

`REVISIONS` lists this release's revisions, oldest first, so that a store already at `HEAD` can
start with one SELECT and without importing Alembic; tests/test_migrations.py proves it matches
the scripts in versions/. A new migration: add versions/NNNN_what.py with `down_revision` set to
the previous head, append its id here, and let the model-vs-migration test tell you if they agree.
"""

from __future__ import annotations

REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004")
HEAD: str = REVISIONS[-1]
