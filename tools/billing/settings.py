"""The `billing:` section of the config: where the FOCUS exports and token-usage logs are, and
the business facts (tier prices, budgets, negotiated model prices) that turn them into economics.

It lives in tools/ next to the code that reads it (agent/config.py only mounts it), so the
collectors can take it without importing agent/.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from costwarden.tools.llm_prices import ModelPriceOverride


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetSpec(_Strict):
    """A monthly budget for one feature, team, account or service (or everything)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=120, description="Unique budget name.")
    scope: Literal["feature", "team", "env", "account", "service", "total"] = Field(description=(
        "feature, team and env match FOCUS tags through tag_map; account matches SubAccountId, service ServiceName."))
    value: str | None = Field(None, description="The feature/team/account/service name; omit for scope 'total'.")
    monthly_usd: float = Field(gt=0, description="The budget, in the export's billing currency (not converted).")
    source: Literal["focus", "llm"] = Field("focus", description="Spend from the FOCUS bill or from token usage.")

    @model_validator(mode="after")
    def _value(self) -> BudgetSpec:
        if self.scope != "total" and not self.value:
            raise ValueError(f"budget {self.name!r}: scope '{self.scope}' needs a value")
        if self.source == "llm" and self.scope not in ("feature", "total"):
            raise ValueError(f"budget {self.name!r}: token-usage budgets have scope 'feature' or 'total'")
        return self


class BillingSettings(_Strict):
    focus_paths: list[str] = Field(default_factory=list, description=(
        "FOCUS 1.x exports: files, globs, s3:// or gs:// URLs (an object, a prefix or a glob; downloaded to a "
        "local cache with the AWS session or GCS JSON API, so no DuckDB extension is needed)"))
    warehouse: WarehouseSettings | None = Field(None, description=(
        "Run the billing aggregations in Athena or BigQuery where the FOCUS export already lives, instead of "
        "reading focus_paths into local DuckDB (docs/billing-warehouse.md)."))
    usage_paths: list[str] = Field(default_factory=list,
                                   description="LLM usage JSON lines: OpenTelemetry GenAI spans or LiteLLM spend logs")
    litellm_database_url: SecretStr | None = Field(None, description=(
        "The LiteLLM proxy's database (postgresql+psycopg://user:password@host/litellm), read-only: its daily "
        "spend tables, else LiteLLM_SpendLogs, aggregated in the database (tools/llm/litellm_db.py). A secret: "
        "never logged; a read-only database user is enough."))
    litellm_database_source: Literal["auto", "daily", "spend_logs"] = Field("auto", description=(
        "'auto': LiteLLM_DailyUserSpend/DailyTagSpend when they hold rows (daily cells, feature tags), else "
        "LiteLLM_SpendLogs (hourly cells with feature and tier tags, tenants and outcomes)."))
    usage_store: str | None = Field(None, description=(
        "A DuckDB file keeping the hourly usage rollup and the files' read positions across restarts "
        "(default: <state_dir>/usage.duckdb). One process opens it at a time: the daemon holds it only during a "
        "sweep, and a CLI run beside it waits for the sweep to end (at most 120 s, then a one-line error)."))
    cost_column: Literal["EffectiveCost", "BilledCost"] = Field("EffectiveCost", description=(
        "The one FOCUS cost column summed, never both (commitments would count twice)."))
    tag_map: dict[str, list[str]] = Field(
        default_factory=lambda: {"feature": ["feature", "app", "application"],
                                 "team": ["team", "Team", "owner", "Owner"],
                                 "env": ["env", "environment"],
                                 "cost_center": ["CostCenter", "cost-center", "costcenter", "cost_center"]},
        description="dimension -> FOCUS Tags keys, first present wins (see tag_keys_case_sensitive)")
    tag_keys_case_sensitive: bool = Field(False, description=(
        "Match Tags keys exactly; by default `owner` also matches `Owner` and `OWNER`."))
    lookback_days: int = Field(35, ge=7, le=400, description="History read for anomalies and series.")
    usage_retention_days: int = Field(400, ge=35, le=3650, description=(
        "Days of token usage the rollup keeps behind the newest hour it holds; older hours are dropped after each "
        "read. Span ids (to count a retried span once) are kept 35 days."))
    usage_window_days: int = Field(30, ge=1, le=400, description="Window of unit costs, oversizing and caching.")
    tier_revenue_usd_month: dict[str, float] = Field(default_factory=dict,
                                                     description="what one user of each tier pays per month")
    budgets: list[BudgetSpec] = Field(default_factory=list, description="Monthly budgets the budget filter forecasts.")
    price_overrides: dict[str, ModelPriceOverride] = Field(default_factory=dict,
                                                           description="negotiated prices by model, USD per 1M tokens")

    @property
    def has_bill(self) -> bool:
        """A FOCUS bill is configured: local files or a warehouse table."""
        return bool(self.focus_paths or self.warehouse)

    @property
    def has_usage(self) -> bool:
        """Token usage is configured: files, LiteLLM's database, or both."""
        return bool(self.usage_paths or self.litellm_database_url)

    @model_validator(mode="after")
    def _one_bill(self) -> BillingSettings:
        if self.focus_paths and self.warehouse:
            raise ValueError("billing: set focus_paths or warehouse, not both (one bill, read one way)")
        needed = max(self.lookback_days, self.usage_window_days)
        if self.usage_retention_days < needed:
            raise ValueError(f"billing.usage_retention_days ({self.usage_retention_days}) is shorter than the "
                             f"{needed} days lookback_days/usage_window_days read back")
        return self
