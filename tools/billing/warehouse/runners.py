"""The warehouse clients: Athena through PyAthena, BigQuery through google-cloud-bigquery, and the
ledger of bytes they scan.

Missing data is never zero: a failed, refused or capped query raises (a BillingInputError, so the
collectors report it as the sweep's error) and never returns an empty result in its place.

The cap works differently per warehouse because the warehouses differ:
- BigQuery estimates a query before running it (a dry run, free) and enforces a per-job limit
  (maximumBytesBilled): a query that would pass the remaining allowance is refused before it runs,
  and the job itself carries the allowance as its limit.
- Athena has no estimate, and its per-query cutoff (BytesScannedCutoffPerQuery) is a workgroup
  setting no query can set: each query's DataScannedInBytes is added after it finishes, and once the
  allowance is used up the export's later queries are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from costwarden.tools.duckdb_sql import first_line
from costwarden.tools.errors import BillingInputError

# on-demand list prices, used to put a dollar figure next to the bytes (docs/billing-warehouse.md)
ATHENA_USD_PER_TB = 5.0  # per 10**12 bytes; Athena bills at least 10 MB a query
BIGQUERY_USD_PER_TIB = 6.25  # per 2**40 bytes; BigQuery bills at least 10 MB a query
MIN_BILLED_BYTES = 10 * 1024**2


class WarehouseQueryError(BillingInputError):
    """A warehouse query failed; the message names the warehouse and the question."""


class WarehouseCapError(BillingInputError):
    """A query was refused because the sweep's allowance of bytes scanned is used up (or would be)."""


@dataclass
class ScanLedger:
    """Bytes scanned by a sweep's warehouse queries, against `billing.warehouse.max_bytes_scanned`."""

    limit: int
    kind: str = "athena"
    used: int = 0
    queries: list[tuple[str, int]] = field(default_factory=list)  # (question, bytes) in order

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def check(self, name: str, estimate: int = 0) -> None:
        """Refuse a query when the allowance is used up, or when its estimate would pass it."""
        if self.used >= self.limit or (estimate and self.used + estimate > self.limit):
            what = f" (estimated {estimate:,} bytes)" if estimate else ""
            raise WarehouseCapError(
                f"{self.kind}: query '{name}'{what} refused: {self.used:,} of the {self.limit:,} bytes allowed "
                f"(billing.warehouse.max_bytes_scanned) already scanned this sweep")

    def add(self, name: str, scanned: int) -> None:
        self.used += scanned
        self.queries.append((name, scanned))

    def cost_usd(self) -> float:
        """The on-demand price of the queries run, each billed at least 10 MB."""
        billed = sum(max(b, MIN_BILLED_BYTES) for _, b in self.queries)
        if self.kind == "bigquery":
            return billed / 2**40 * BIGQUERY_USD_PER_TIB
        return billed / 10**12 * ATHENA_USD_PER_TB

    def summary(self) -> str:
        return (f"{self.kind}: {len(self.queries)} queries scanned {self.used:,} bytes so far this sweep "
                f"(~${self.cost_usd():.4f} on demand; limit {self.limit:,})")


class Runner(Protocol):
    """Runs one query of the warehouse's dialect and returns its rows, adding its bytes to the ledger."""

    dialect: str

    def run(self, name: str, sql: str, ledger: ScanLedger) -> list[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class AthenaRunner:
    """Athena through PyAthena's DB-API cursor: it starts the query, polls it, pages GetQueryResults
    and converts the values by the result's column types (DECIMAL to Decimal, DATE to date)."""

    dialect = "athena"

    def __init__(self, settings: WarehouseSettings, poll_interval: float = 1.0) -> None:
        try:
            from pyathena import connect
        except ImportError:
            raise BillingInputError("billing.warehouse.kind athena needs PyAthena: "
                                    "pip install 'costwarden[warehouse]'") from None
        kwargs: dict[str, Any] = {"work_group": settings.workgroup, "schema_name": settings.table.split(".")[0],
                                  "poll_interval": poll_interval}
        if settings.region:
            kwargs["region_name"] = settings.region
        if settings.output_location:
            kwargs["s3_staging_dir"] = settings.output_location
        if settings.endpoint_url:
            kwargs["endpoint_url"] = settings.endpoint_url
        try:
            self.conn = connect(**kwargs)
        except Exception as exc:  # noqa: BLE001 - botocore's configuration errors: one line for the user
            raise WarehouseQueryError(f"athena: cannot connect: {first_line(exc)}") from None

    def run(self, name: str, sql: str, ledger: ScanLedger) -> list[tuple[Any, ...]]:
        ledger.check(name)
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql)
            rows = [tuple(r) for r in cursor.fetchall()]
            ledger.add(name, int(cursor.data_scanned_in_bytes or 0))  # read before close, which drops it
        except Exception as exc:  # noqa: BLE001 - PyAthena's OperationalError/DatabaseError, botocore errors
            raise WarehouseQueryError(f"athena: query '{name}' failed: {first_line(exc)}") from None
        finally:
            cursor.close()
        return rows

    def close(self) -> None:
        self.conn.close()


class BigQueryRunner:
    """BigQuery through google-cloud-bigquery's query_and_wait (jobs.query, then getQueryResults
    pages): each query is dry-run first for its estimate, then run with maximumBytesBilled set
    to what is left of the allowance."""

    dialect = "bigquery"

    def __init__(self, settings: WarehouseSettings, credentials: Any = None) -> None:
        try:
            from google.cloud import bigquery
        except ImportError:
            raise BillingInputError("billing.warehouse.kind bigquery needs google-cloud-bigquery: "
                                    "pip install 'costwarden[warehouse]'") from None
        self._bigquery = bigquery
        kwargs: dict[str, Any] = {"project": settings.project, "location": settings.location}
        if settings.endpoint_url:  # a local fake (tests) or a private endpoint: as tools/gcp/session.py
            from google.auth.credentials import AnonymousCredentials

            endpoint = settings.endpoint_url if "://" in settings.endpoint_url else f"https://{settings.endpoint_url}"
            kwargs.update(client_options={"api_endpoint": endpoint}, credentials=credentials or AnonymousCredentials())
        elif credentials is not None:
            kwargs["credentials"] = credentials
        try:
            self.client = bigquery.Client(**kwargs)
        except Exception as exc:  # noqa: BLE001 - DefaultCredentialsError and friends
            raise WarehouseQueryError(f"bigquery: cannot connect: {first_line(exc)}") from None

    def run(self, name: str, sql: str, ledger: ScanLedger) -> list[tuple[Any, ...]]:
        bq = self._bigquery
        ledger.check(name)
        try:
            dry = self.client.query_and_wait(sql, job_config=bq.QueryJobConfig(dry_run=True, use_query_cache=False))
            estimate = int(dry.total_bytes_processed or 0)
        except Exception as exc:  # noqa: BLE001 - google.api_core errors: one line
            raise WarehouseQueryError(f"bigquery: query '{name}' rejected in dry run: {first_line(exc)}") from None
        ledger.check(name, estimate)
        limit = max(ledger.remaining, MIN_BILLED_BYTES)  # BigQuery bills at least 10 MB: a lower limit fails all
        try:
            result = self.client.query_and_wait(sql, job_config=bq.QueryJobConfig(maximum_bytes_billed=limit))
            rows = [tuple(r.values()) for r in result]
        except Exception as exc:  # noqa: BLE001
            raise WarehouseQueryError(f"bigquery: query '{name}' failed: {first_line(exc)}") from None
        ledger.add(name, int(result.total_bytes_processed or 0))
        return rows

    def close(self) -> None:
        self.client.close()


def open_runner(settings: WarehouseSettings) -> Runner:
    """The client of the configured warehouse."""
    if settings.kind == "athena":
        return AthenaRunner(settings)
    return BigQueryRunner(settings)
