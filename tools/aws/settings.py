"""Parts of the `aws:` config section that tools read: Organization discovery and Cost Explorer.

They live in tools/ next to the code that reads them (agent/config.py only mounts them), so the
billing collector can take them without importing agent/, and loading a config imports no boto3.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ACCOUNT_ID = re.compile(r"\d{12}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrganizationSettings(_Strict):
    """Sweep every ACTIVE account of an AWS Organization, found with ListAccounts from the
    management (or delegated-admin) account of the base credentials."""

    role_name: str = Field(
        pattern=r"^[\w+=,.@-]+(/[\w+=,.@-]+)*$", max_length=512,
        description=("Role assumed in each member account (arn:aws:iam::<id>:role/<role_name>). Required: name a "
                     "read-only role rather than the admin OrganizationAccountAccessRole."))
    include: list[str] = Field(default_factory=list, description=(
        "Only these accounts: 12-digit ids or name patterns (fnmatch, e.g. 'ml-*'); empty: every account."))
    exclude: list[str] = Field(default_factory=list, description="Never these accounts: ids or name patterns.")
    include_management: bool = Field(False, description=(
        "Also sweep the management account itself (with the base credentials when they are its own)."))

    @field_validator("include", "exclude")
    @classmethod
    def _selectors(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s.strip():
                raise ValueError("an empty account selector")
            if s.isdigit() and not ACCOUNT_ID.fullmatch(s):
                raise ValueError(f"not a 12-digit account id: {s!r}")
        return v


class CostExplorerSettings(_Strict):
    """Daily costs from the Cost Explorer API when no FOCUS export is configured."""

    enabled: bool = Field(False, description=(
        "Read daily costs with GetCostAndUsage when billing.focus_paths is empty. Off by default: AWS charges "
        "$0.01 per request, and a sweep makes about two for spend anomalies plus one per budget scope "
        "(more when results span several pages)."))
    role_arn: str | None = Field(None, description=(
        "Role to assume for Cost Explorer, e.g. in the management account; empty: the base credentials."))
    usage_types: bool = Field(True, description=(
        "One more request per sweep (SERVICE x USAGE_TYPE) that lists the usage types behind each "
        "service's latest day."))

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        """`cost_explorer: true` is short for `cost_explorer: {enabled: true}`."""
        return {"enabled": v} if isinstance(v, bool) else v

    @field_validator("role_arn")
    @classmethod
    def _role(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", v):
            raise ValueError(f"not an IAM role ARN: {v!r} (arn:aws:iam::<12-digit account>:role/<name>)")
        return v


class RetrySettings(_Strict):
    """botocore's own retries, configured once on every boto3 client Costwarden builds. No second
    retry layer wraps them (tools/aws/retry.py says why)."""

    mode: Literal["standard", "adaptive"] = Field("standard", description=(
        "botocore retry mode: `standard` (exponential back-off with jitter, retry quota) or `adaptive` "
        "(standard plus a client-side rate limiter that slows down after throttling)."))
    max_attempts: int = Field(10, ge=1, le=20, description=(
        "Sends per API call, the first one included (botocore's `total_max_attempts`; 1 = never retry). "
        "Throttling, transient 5xx errors and connection errors are retried."))
