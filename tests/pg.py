"""The local PostgreSQL (127.0.0.1:5432, user postgres, no password) for multi-replica tests.

Every test that needs it gets a throwaway database and skips with the reason when the server
is not there, so the default suite never requires PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"


def admin_engine(isolation_level: str = "AUTOCOMMIT") -> Engine:
    """An engine on the `postgres` database, or a skip naming why the server cannot be reached."""
    pytest.importorskip("psycopg")
    engine = create_engine(f"{SERVER}/postgres", isolation_level=isolation_level)
    try:
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is a skip, with its class
        engine.dispose()
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not reachable: {exc.__class__.__name__}")
    return engine


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create a fresh database, yield its SQLAlchemy URL, drop it (with its connections) afterwards."""
    admin = admin_engine()
    name = f"{prefix}_{secrets.token_hex(5)}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
