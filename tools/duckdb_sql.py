"""The DuckDB connection and SQL text helpers shared by the FOCUS reader and the token-usage reader.

Both read files a user points at with in-memory DuckDB, bind values where DuckDB allows it, and
quote the rest (file paths inside `read_csv(...)`, column names taken from a file's header) here.
"""

from __future__ import annotations

import re
from typing import Any

from costwarden.state.errors import first_line as state_first_line


def connect() -> Any:
    """A fresh in-memory database whose session time zone is UTC, so timestamps read from files
    and bound from Python compare as the same wall clock on every host."""
    import duckdb  # imported on first use: a process that reads no files never pays for it

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone='UTC'")
    return con


def sql_str(s: str) -> str:
    """A SQL string literal (for places DuckDB takes no bound parameter, such as a reader's path)."""
    return "'" + s.replace("'", "''") + "'"


def ident(s: str) -> str:
    """A quoted SQL identifier: FOCUS column names come from the file's header, not from us."""
    return '"' + s.replace('"', '""') + '"'


def first_line(exc: BaseException) -> str:
    """DuckDB's error as one line: its messages run over several, and a user needs the first."""
    return re.sub(r"\s+", " ", state_first_line(exc))
