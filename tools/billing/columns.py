"""How a FOCUS file is read: which FOCUS column each logical name comes from, and the SQL that
normalises it by the type it has in that file.

CSV is read with every column as VARCHAR and cast explicitly, so an all-digit account id such as
``012345678901`` keeps its leading zero and a bad amount is an error naming the file and column,
not a silent NULL. Typed Parquet columns are read as they are: a DECIMAL is not printed and
re-parsed, and a TIMESTAMP WITH TIME ZONE becomes UTC through integer microseconds rather than the
ICU time zone code, which costs more than the rest of a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from costwarden.tools.duckdb_sql import first_line, ident, sql_str
from costwarden.tools.errors import BillingInputError

AMOUNT = "DECIMAL(38,17)"  # FOCUS amounts carry up to 17 fractional digits; totals must be exact
TEXT, TS, NUM = "text", "timestamp", "amount"
# logical name -> (FOCUS column(s), first present wins; kind; required).
# FOCUS 1.3 renamed ProviderName to ServiceProviderName: either is accepted, the new one first.
COLUMNS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "provider": (("ServiceProviderName", "ProviderName"), TEXT, True),
    "billing_account": (("BillingAccountId",), TEXT, True),
    "sub_account": (("SubAccountId",), TEXT, False),
    "service": (("ServiceName",), TEXT, True),
    "service_category": (("ServiceCategory",), TEXT, False),
    "region": (("RegionId",), TEXT, False),
    "resource_id": (("ResourceId",), TEXT, False),
    "sku_id": (("SkuId",), TEXT, False),
    "charge_category": (("ChargeCategory",), TEXT, True),
    "commitment_status": (("CommitmentDiscountStatus",), TEXT, False),
    "currency": (("BillingCurrency",), TEXT, True),
    "tags": (("Tags",), TEXT, False),
    "charge_start": (("ChargePeriodStart",), TS, True),
    "charge_end": (("ChargePeriodEnd",), TS, True),
    "billed_cost": (("BilledCost",), NUM, True),
    "effective_cost": (("EffectiveCost",), NUM, True),
    "consumed_quantity": (("ConsumedQuantity",), NUM, False),
}
# dimensions a caller may group by; tag dimensions are "tag:<key>" or a name mapped in TagMap
DIMENSIONS = ("provider", "billing_account", "sub_account", "service", "service_category", "region",
              "charge_category", "currency", "sku_id")
CostColumn = Literal["EffectiveCost", "BilledCost"]
DAY_US = 86_400_000_000
EPOCH = datetime(1970, 1, 1)

_NUMERIC = ("DECIMAL", "DOUBLE", "FLOAT", "REAL", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT",
            "UINTEGER", "USMALLINT", "UTINYINT")
_NULL_TYPE = {TEXT: "VARCHAR", TS: "TIMESTAMP", NUM: AMOUNT}


@dataclass(frozen=True)
class SpendRow:
    """One cell of an aggregate: the dimension values, the day (None for a period total) and cost."""

    keys: dict[str, str | None]
    day: date | None
    cost: Decimal
    currency: str


def tag_value_sql(json_expr: str, key: str, case_sensitive: bool) -> tuple[str, str]:
    """SQL (with one `?`) and its parameter for the value of Tags key `key`. Case-insensitive by
    default: exports spell the same key `owner` and `Owner`, and an exact match left most spend
    unattributed on third-party data. The first key in the object that matches wins."""
    if case_sensitive:
        return f"json_extract_string({json_expr}, ?)", '$."' + key.replace('"', '\\"') + '"'
    found = f"list_filter(json_keys({json_expr}), lambda k: lower(k) = ?)[1]"
    return (f"json_extract_string({json_expr}, '$.\"' || replace({found}, '\"', '\\\"') || '\"')",
            key.lower())


def reader_sql(path: str) -> str:
    """The DuckDB table function that reads one export file, chosen by its name."""
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return f"read_parquet({sql_str(path)})"
    if lower.endswith((".csv", ".csv.gz", ".tsv")):
        return f"read_csv({sql_str(path)}, all_varchar=true, header=true)"
    raise BillingInputError(f"{path}: not a FOCUS export (expected .csv, .csv.gz or .parquet)")


def amount_sql(column: str, sql_type: str) -> str:
    """An amount column as an exact DECIMAL, by its type in the file (CSV: always VARCHAR)."""
    col = ident(column)
    if sql_type.startswith(_NUMERIC):
        return f"CAST({col} AS {AMOUNT})"
    text = col if sql_type == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    return f"CAST(NULLIF(TRIM({text}), '') AS {AMOUNT})"


def cast_sql(name: str, kind: str, column: str, sql_type: str = "VARCHAR") -> str:
    """The normalising expression for one column, named `name`, by its type in the file."""
    col = ident(column)
    text = col if sql_type == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    if kind == TEXT:
        return f"NULLIF(TRIM({text}), '') AS {name}"
    if kind == TS:
        if sql_type == "TIMESTAMP WITH TIME ZONE":
            return f"make_timestamp(epoch_us({col})) AS {name}"
        if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
            return f"CAST({col} AS TIMESTAMP) AS {name}"
        return f"make_timestamp(epoch_us(CAST(NULLIF(TRIM({text}), '') AS TIMESTAMPTZ))) AS {name}"
    return f"{amount_sql(column, sql_type)} AS {name}"


def raw_us_sql(column: str, sql_type: str) -> str:
    """Microseconds since the epoch (UTC) of a timestamp column, without the ICU time zone code."""
    col = ident(column)
    if sql_type == "TIMESTAMP WITH TIME ZONE":
        return f"epoch_us({col})"
    if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
        return f"epoch_us(CAST({col} AS TIMESTAMP))"
    text = col if sql_type == "VARCHAR" else f"CAST({col} AS VARCHAR)"
    return f"epoch_us(CAST(NULLIF(TRIM({text}), '') AS TIMESTAMPTZ))"


def us_literal(us: int, sql_type: str) -> str:
    """A constant of the column's own type, so DuckDB can skip Parquet row groups by their statistics."""
    text = (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%d %H:%M:%S.%f")
    if sql_type == "TIMESTAMP WITH TIME ZONE":
        return f"TIMESTAMPTZ '{text}+00'"
    return f"TIMESTAMP '{text}'"


def utc_naive(value: datetime | date) -> datetime:
    """A bound parameter compared with the UTC wall-clock timestamps the view holds."""
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def data_end_of(period: tuple[datetime, datetime] | None) -> datetime | None:
    """Midnight after an export's last complete day (its latest charge end, down to a day boundary):
    where a default window ends when the wall-clock one holds no data. Local and warehouse alike."""
    if period is None:
        return None
    end = period[1]
    return datetime(end.year, end.month, end.day)


def epoch_us(value: datetime | date) -> int:
    """Microseconds since the epoch of a UTC wall-clock time (see utc_naive)."""
    delta = utc_naive(value) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True)
class Source:
    """One file of an export: how to read it, which of its columns serve each logical name, and
    the SQL type of every column it has."""

    path: str
    reader: str
    mapping: dict[str, str]  # logical name -> the file's column
    types: dict[str, str]  # the file's column -> its SQL type

    @classmethod
    def open(cls, con: Any, path: str, known_types: dict[str, dict[str, str]]) -> Source:
        """Describe the file (once per process: `known_types` is the shared cube's memory of it) and
        map its columns; a missing required column is an error naming the file."""
        reader = reader_sql(path)
        types = known_types.get(path, {})
        if not types:
            try:
                types = {r[0]: str(r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()}
            except Exception as exc:  # noqa: BLE001 - duckdb raises many types; the user needs one line
                raise BillingInputError(f"{path}: cannot read: {first_line(exc)}") from None
            known_types[path] = types
        mapping: dict[str, str] = {}
        for name, (candidates, _kind, required) in COLUMNS.items():
            column = next((c for c in candidates if c in types), None)
            if column is not None:
                mapping[name] = column
            elif required:
                raise BillingInputError(f"{path}: missing required FOCUS column '{candidates[0]}'"
                                        + (f" (or '{candidates[1]}')" if len(candidates) > 1 else ""))
        return cls(path, reader, mapping, types)

    def view_select(self) -> str:
        """This file's rows with every logical column normalised (NULL where the file lacks it)."""
        select = []
        for name, (_candidates, kind, _required) in COLUMNS.items():
            column = self.mapping.get(name)
            if column is None:
                select.append(f"CAST(NULL AS {_NULL_TYPE[kind]}) AS {name}")
            else:
                select.append(cast_sql(name, kind, column, self.types[column]))
        return f"SELECT {', '.join(select)}, {sql_str(self.path)} AS source_file FROM {self.reader}"

    def text(self, name: str) -> str:
        """The column of a logical text name as raw VARCHAR (NULL when the file lacks it)."""
        column = self.mapping.get(name)
        if column is None:
            return "CAST(NULL AS VARCHAR)"
        return ident(column) if self.types[column] == "VARCHAR" else f"CAST({ident(column)} AS VARCHAR)"

    def amount(self, name: str) -> str:
        """The column of a logical amount name as an exact DECIMAL."""
        column = self.mapping[name]
        return amount_sql(column, self.types[column])
