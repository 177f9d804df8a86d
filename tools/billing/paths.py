"""The files a billing or usage setting names: local paths, globs, and s3:// or gs:// URLs.

Remote objects are downloaded to a local cache first (tools/billing/remote.py): DuckDB's httpfs
would fetch its extension from the internet, which air-gapped hosts cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from costwarden.tools.billing.remote import fetch
from costwarden.tools.duckdb_sql import connect
from costwarden.tools.errors import BillingInputError

_GLOB = "*?["


def expand_paths(con: Any | None, paths: Sequence[str | Path]) -> list[str]:
    """Local paths, globs and s3:// or gs:// URLs -> the local files they name, in order.

    Globs are expanded by DuckDB's own glob(), as its readers would; with `con` None a connection
    is opened only when a glob needs one (each costs tens of ms).
    """
    own = None
    if con is None and any(any(ch in str(p) for ch in _GLOB) or "://" in str(p)
                           for p in paths if not str(p).startswith(("s3://", "gs://"))):
        con = own = connect()
    try:
        return _expand(con, paths)
    finally:
        if own is not None:
            own.close()


def _expand(con: Any, paths: Sequence[str | Path]) -> list[str]:
    files: list[str] = []
    for p in paths:
        text = str(p)
        if text.startswith(("s3://", "gs://")):
            files.extend(fetch(text))
            continue
        if not any(ch in text for ch in _GLOB) and "://" not in text:
            if not Path(text).is_file():
                raise BillingInputError(f"{text}: no such file")
            files.append(text)
            continue
        found = [r[0] for r in con.execute("SELECT file FROM glob(?) ORDER BY file", [text]).fetchall()]
        if not found:
            raise BillingInputError(f"{text}: no file matches")
        files.extend(found)
    return files
