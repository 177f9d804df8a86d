"""LiteLLM's own tables, created from the schema.prisma that ships inside the installed litellm package.

The proxy creates its database with Prisma (whose engines are downloaded at run time, impossible
here); the tests read the same model definitions, so a column LiteLLM renames or adds shows up
here without anyone copying it by hand. Prisma types map to SQLAlchemy types (Json is jsonb on
PostgreSQL, as Prisma makes it); literal @default values fill the columns a test leaves out.
"""

from __future__ import annotations

import importlib.util
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, DateTime, Float, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

TABLES = ("LiteLLM_SpendLogs", "LiteLLM_DailyUserSpend", "LiteLLM_DailyTagSpend", "LiteLLM_DailyTeamSpend",
          "LiteLLM_DailyEndUserSpend")
_TYPES = {"String": Text, "Int": Integer, "BigInt": BigInteger, "Float": Float, "DateTime": DateTime,
          "Boolean": Boolean, "Json": JSON().with_variant(JSONB(), "postgresql")}


def schema_path() -> Path:
    spec = importlib.util.find_spec("litellm")  # locates the package without importing it (seconds)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "proxy" / "schema.prisma"


def _default(spec: str) -> Any:
    m = re.search(r"@default\s*\(((?:[^()]|\([^()]*\))*)\)", spec)
    if "@updatedAt" in spec or (m and m.group(1).strip() == "now()"):
        return datetime.utcnow
    if not m:
        return None
    raw = m.group(1).strip()
    if raw == "uuid()":
        return lambda: str(uuid.uuid4())
    if raw.startswith('"'):
        value = raw.strip('"')
        if value in ("[]", "{}"):
            return (lambda: []) if value == "[]" else (lambda: {})
        return value
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return None  # a function or enum the tests do not need


def models(text: str | None = None) -> dict[str, list[tuple[str, str, bool, bool, Any]]]:
    """model -> [(column, prisma type, optional, primary key, default)] for the scalar fields."""
    text = text if text is not None else schema_path().read_text()
    out: dict[str, list[tuple[str, str, bool, bool, Any]]] = {}
    for name, body in re.findall(r"^model\s+(\w+)\s*\{(.*?)^\}", text, flags=re.S | re.M):
        cols = []
        for line in body.splitlines():
            line = line.split("//")[0].strip()
            m = re.match(r"(\w+)\s+(\w+)(\[\])?(\?)?\s*(.*)$", line)
            if not m or line.startswith("@@") or m.group(3) or m.group(2) not in _TYPES:
                continue  # relations, lists and block attributes are not columns we need
            mapped = re.search(r'@map\("(\w+)"\)', m.group(5))
            cols.append((mapped.group(1) if mapped else m.group(1), m.group(2), bool(m.group(4)),
                         "@id" in m.group(5), _default(m.group(5))))
        out[name] = cols
    return out


def create_tables(engine: Engine, names: tuple[str, ...] = TABLES) -> dict[str, Table]:
    meta = MetaData()
    defs = models()
    tables = {}
    for name in names:
        tables[name] = Table(name, meta, *(
            Column(col, _TYPES[kind], primary_key=pk, nullable=optional, default=default) for col, kind, optional, pk, default in defs[name]))
    meta.create_all(engine)
    return tables
