"""The accounts of an AWS Organization: ListAccounts (paginated) from the management or
delegated-admin account, then a pure selection of which ACTIVE accounts a sweep assumes a role in.

Listing is read-only and happens once per sweep (AwsClients caches it). A failure to list is one
OrganizationError line; a member account whose role cannot be assumed is not an error here: it
is reported later, per account, by the collector that tries it, and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costwarden.tools.aws.retry import error_code
from costwarden.tools.aws.settings import ACCOUNT_ID, OrganizationSettings
from costwarden.tools.errors import ToolError

ORGANIZATIONS_REGION = "us-east-1"  # the API's one endpoint in the commercial partition
MAX_PAGE_SIZE = 20  # ListAccounts' MaxResults limit


class OrganizationError(ToolError):
    """The organization's accounts could not be listed (not in an organization, no permission)."""


@dataclass(frozen=True)
class OrgAccount:
    id: str
    name: str
    status: str  # ACTIVE, SUSPENDED, PENDING_CLOSURE, ... (the newer `State` field when present)


@dataclass(frozen=True)
class Discovery:
    """What the sweep needs: the selected accounts and which one is the management account."""

    accounts: list[OrgAccount]
    management_id: str
    listed: int  # every account ListAccounts returned, before selection


def list_accounts(client: Any, *, page_size: int = MAX_PAGE_SIZE) -> list[OrgAccount]:
    """Every account of the organization (boto3's paginator; botocore retries each page on throttling)."""
    out: list[OrgAccount] = []
    for page in client.get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": page_size}):
        for a in page.get("Accounts", []):
            out.append(OrgAccount(id=str(a["Id"]), name=str(a.get("Name", "")),
                                  status=str(a.get("State") or a.get("Status") or "").upper()))
    return out


def _matches(account: OrgAccount, selectors: Iterable[str]) -> bool:
    return any(account.id == s if ACCOUNT_ID.fullmatch(s) else fnmatchcase(account.name, s) for s in selectors)


def select_accounts(accounts: Iterable[OrgAccount], settings: OrganizationSettings,
                    management_id: str) -> list[OrgAccount]:
    """ACTIVE accounts that pass include/exclude, without the management account unless asked for.

    Suspended and closing accounts are dropped: their roles cannot be assumed and their resources
    no longer bill, so sweeping them would only add errors.
    """
    chosen = []
    for a in accounts:
        if a.status != "ACTIVE":
            continue
        if a.id == management_id and not settings.include_management:
            continue
        if settings.include and not _matches(a, settings.include):
            continue
        if _matches(a, settings.exclude):
            continue
        chosen.append(a)
    return sorted(chosen, key=lambda a: a.id)


def role_arn(account_id: str, role_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


def discover(client: Any, settings: OrganizationSettings, *, page_size: int = MAX_PAGE_SIZE) -> Discovery:
    """DescribeOrganization (for the management account id) and ListAccounts, then the selection."""
    try:
        org = client.describe_organization().get("Organization", {})
        listed = list_accounts(client, page_size=page_size)
    except (ClientError, BotoCoreError) as exc:
        raise OrganizationError(f"cannot list the organization's accounts ({error_code(exc)}); "
                                f"no organization account was swept") from None
    management = str(org.get("MasterAccountId", ""))
    return Discovery(select_accounts(listed, settings, management), management, len(listed))
