"""Leader election for several replicas on one PostgreSQL database.

Only the leader schedules sweeps; the others stand by and serve HTTP. The lock is a
session-level PostgreSQL advisory lock held on a dedicated connection, so it is released by
the server the moment the leader's process or connection dies. SQLite is single-host by
nature: there the lock is always granted.
"""

from __future__ import annotations

import logging
import zlib

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from costwarden.state.store import is_shared

log = logging.getLogger("costwarden.leader")

LOCK_KEY = zlib.crc32(b"costwarden-scheduler")  # a stable 32-bit key


class LeaderLock:
    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None

    @property
    def shared(self) -> bool:
        return is_shared(self.engine)

    def try_acquire(self) -> bool:
        if not self.shared:
            return True
        if self._conn is not None:
            return self.still_held()
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except SQLAlchemyError:
            conn.close()
            raise
        if got:
            conn.commit()
            self._conn = conn
        else:
            conn.rollback()
            conn.close()
        return got

    def still_held(self) -> bool:
        if not self.shared:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except SQLAlchemyError:
            log.warning("lost the leader connection; standing down")
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        except SQLAlchemyError:
            pass
        finally:
            self._conn.close()
            self._conn = None
