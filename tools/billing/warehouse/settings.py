"""The `billing.warehouse:` section: which warehouse holds the FOCUS export and how much one
sweep may scan there.

FOCUS only: a CUR 2.0 table is not read directly. AWS Data Exports writes FOCUS 1.0 itself (a
second export next to the CUR one), and Google publishes a FOCUS view over the BigQuery billing
export; both have the columns the local reader uses, so one set of queries serves all three.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# FOCUS column -> the logical name the queries use; `columns` may rename any of them
FOCUS_COLUMNS = {
    "provider": "ProviderName", "billing_account": "BillingAccountId", "sub_account": "SubAccountId",
    "service": "ServiceName", "service_category": "ServiceCategory", "region": "RegionId",
    "charge_category": "ChargeCategory", "commitment_status": "CommitmentDiscountStatus",
    "currency": "BillingCurrency", "sku_id": "SkuId", "tags": "Tags", "charge_start": "ChargePeriodStart",
    "charge_end": "ChargePeriodEnd", "billed_cost": "BilledCost", "effective_cost": "EffectiveCost",
}


class WarehouseSettings(BaseModel):
    """Where the billing aggregations run instead of local DuckDB."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["athena", "bigquery"] = Field(description="The warehouse: Athena (PyAthena) or BigQuery.")
    table: str = Field(description=(
        "The FOCUS table or view: Athena `database.table`, BigQuery `project.dataset.table` (or `dataset.table` "
        "in `project`)."))
    project: str | None = Field(None, description="BigQuery: the project billed for the queries.")
    location: str | None = Field(None, description="BigQuery: the dataset's location (e.g. US, EU).")
    region: str | None = Field(None, description="Athena: the AWS region (default: the AWS session's).")
    workgroup: str = Field("primary", description="Athena: the workgroup the queries run in.")
    output_location: str | None = Field(None, description=(
        "Athena: s3:// prefix for query results (not needed when the workgroup sets one)."))
    partition_column: str | None = Field("billing_period", description=(
        "The partition column every query restricts, for pruning: `billing_period` of AWS Data Exports "
        "(text YYYY-MM), `_PARTITIONTIME` or a date column on BigQuery; null: none (every query then reads "
        "the whole table, which is what max_bytes_scanned is for)."))
    partition_format: Literal["month", "date", "timestamp"] = Field("month", description=(
        "month: text 'YYYY-MM' values; date: a DATE column; timestamp: a TIMESTAMP column (_PARTITIONTIME)."))
    partition_slack_days: int = Field(3, ge=0, le=62, description=(
        "Days of partitions read beyond each end of a window: charges of a day land in a later partition "
        "when they are exported late (BigQuery) or adjusted in the next billing period (Data Exports)."))
    max_bytes_scanned: int = Field(200 * 1024**3, gt=0, description=(
        "Bytes one export's queries may scan together in a sweep; the query that would pass it is refused "
        "(BigQuery: dry-run estimate, maximumBytesBilled) or, on Athena, later queries are (its per-query "
        "cutoff is a workgroup setting)."))
    tags_format: Literal["json", "map"] = Field("json", description=(
        "The Tags column's type: JSON text (FOCUS CSV/Parquet, Google's FOCUS view) or, on Athena, "
        "map<string,string> (AWS Data Exports)."))
    columns: dict[str, str] = Field(default_factory=dict, description=(
        "Logical name -> column, where the table's differ from FOCUS 1.0 (e.g. provider: ServiceProviderName "
        "for FOCUS 1.3)."))
    endpoint_url: str | None = Field(None, description=(
        "An alternative API endpoint (a VPC endpoint, or a local fake in tests)."))

    @model_validator(mode="after")
    def _check(self) -> WarehouseSettings:
        parts = self.table.split(".")
        if not all(_NAME.match(p) for p in parts) or len(parts) < 2 or len(parts) > 3:
            raise ValueError(f"billing.warehouse.table {self.table!r}: use database.table (Athena) or "
                             f"[project.]dataset.table (BigQuery)")
        if self.kind == "athena" and len(parts) != 2:
            raise ValueError(f"billing.warehouse.table {self.table!r}: Athena tables are database.table")
        if self.kind == "bigquery" and len(parts) == 2 and not self.project:
            raise ValueError("billing.warehouse: a dataset.table needs billing.warehouse.project")
        if self.tags_format == "map" and self.kind != "athena":
            raise ValueError("billing.warehouse.tags_format 'map' is for Athena (BigQuery has no MAP type)")
        unknown = sorted(set(self.columns) - set(FOCUS_COLUMNS))
        if unknown:
            raise ValueError(f"billing.warehouse.columns: unknown logical name(s) {', '.join(unknown)}; "
                             f"use {', '.join(FOCUS_COLUMNS)}")
        for value in [*self.columns.values(), self.partition_column or "x"]:
            if not _NAME.match(value) or "." in value:
                raise ValueError(f"billing.warehouse: {value!r} is not a column name")
        return self

    def column(self, name: str) -> str:
        """The table's column for a logical name."""
        return self.columns.get(name, FOCUS_COLUMNS[name])
