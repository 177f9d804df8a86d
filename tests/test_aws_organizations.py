"""Every ACTIVE account of an AWS Organization, found with ListAccounts on the moto server and
reached through STS AssumeRole (moto keeps each account's resources apart): include/exclude,
the management account, an account whose role cannot be assumed, and a failed listing."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from costwarden.agent.config import AwsSettings, ConfigError, Settings, load_settings
from costwarden.agent.engine.sweep import run_sweep
from tests.fakes.moto_server import mutating
from tests.multi_account import ROLE_A, assumed_ec2, deny_role, eip_policies
from costwarden.tools.aws.organizations import OrgAccount, list_accounts, role_arn, select_accounts
from costwarden.tools.aws.session import AwsClients
from costwarden.tools.aws.settings import OrganizationSettings
from costwarden.tools.registry import get_tool

MANAGEMENT = "123456789012"  # moto's default account: the base credentials create the organization
ROLE = "CostwardenReadOnly"


@pytest.fixture
def org(aws) -> dict[str, dict[str, str]]:
    """An organization with four member accounts (one closed) and a free Elastic IP in every account."""
    client = boto3.client("organizations", region_name="us-east-1")
    client.create_organization(FeatureSet="ALL")
    ids = {name: client.create_account(AccountName=name, Email=f"{name}@example.com")
           ["CreateAccountStatus"]["AccountId"] for name in ("ml-research", "ml-web", "ml-denied", "sandbox", "old")}
    eips = {MANAGEMENT: boto3.client("ec2", region_name="us-east-1").allocate_address(Domain="vpc")["AllocationId"]}
    for name, account in ids.items():
        region = "us-west-2" if name == "ml-web" else "us-east-1"
        eips[account] = assumed_ec2(role_arn(account, ROLE), region).allocate_address(Domain="vpc")["AllocationId"]
    client.close_account(AccountId=ids["old"])
    aws.clear_calls()
    return {"ids": ids, "eips": eips}


def _settings(state_dir: Path, organization: dict, accounts: list[str] | None = None) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1", "us-west-2"], accounts=accounts or [],
                                                         organization=organization))


def test_every_active_account_is_swept_and_one_that_cannot_be_assumed_is_reported(
        aws, org, state_dir, tmp_path, no_costwarden_env, monkeypatch):
    ids = org["ids"]
    denied = role_arn(ids["ml-denied"], ROLE)
    deny_role(monkeypatch, denied)
    settings = _settings(state_dir, {"role_name": ROLE, "exclude": [ids["sandbox"]]})
    result = run_sweep(settings, eip_policies(tmp_path), dry_run=True)

    found = {(f.account, f.region, f.resource_id) for f in result.findings}
    assert found == {(ids["ml-research"], "us-east-1", org["eips"][ids["ml-research"]]),
                     (ids["ml-web"], "us-west-2", org["eips"][ids["ml-web"]])}  # not the management, sandbox, old
    assert result.status == "partial"
    [err] = result.errors
    assert denied in err and "(ml-denied)" in err and "AccessDenied" in err and "\n" not in err
    calls = aws.calls
    assert calls.count("ListAccounts") == 1 and calls.count("DescribeOrganization") == 1  # once per sweep
    assert calls.count("AssumeRole") == 2  # research and web; the denied one never left the process
    assert mutating(calls) == []


def test_include_by_name_and_the_management_account_with_its_own_credentials(
        aws, org, state_dir, tmp_path, no_costwarden_env):
    ids = org["ids"]
    settings = _settings(state_dir, {"role_name": ROLE, "include": ["ml-r*", MANAGEMENT],
                                     "include_management": True})
    result = run_sweep(settings, eip_policies(tmp_path), dry_run=True)
    assert result.errors == []
    assert {f.account for f in result.findings} == {MANAGEMENT, ids["ml-research"]}
    assert aws.calls.count("AssumeRole") == 1  # no role assumed into the management account itself


def test_a_failed_listing_is_one_error_line_and_configured_roles_still_run(
        aws, state_dir, tmp_path, no_costwarden_env):
    """No organization exists: ListAccounts' failure is reported and the explicit role ARN is swept."""
    allocated = assumed_ec2(ROLE_A).allocate_address(Domain="vpc")["AllocationId"]
    result = run_sweep(_settings(state_dir, {"role_name": ROLE}, accounts=[ROLE_A]), eip_policies(tmp_path),
                       dry_run=True)
    assert result.status == "partial"
    [err] = result.errors
    assert err.startswith("aws organization: ") and "cannot list the organization's accounts" in err
    assert "AWSOrganizationsNotInUseException" in err and "\n" not in err
    assert [f.resource_id for f in result.findings] == [allocated]


def test_list_accounts_follows_pages(aws, org):
    accounts = list_accounts(boto3.client("organizations", region_name="us-east-1"), page_size=2)
    assert {a.id for a in accounts} == {MANAGEMENT, *org["ids"].values()}
    assert {a.id: a.status for a in accounts}[org["ids"]["old"]] == "SUSPENDED"


def test_an_action_runs_in_the_organization_account_of_its_finding(aws, org):
    web = org["ids"]["ml-web"]
    clients = AwsClients(dry_run=False, organization=OrganizationSettings(role_name=ROLE))
    out = get_tool("aws.elastic-ip.release_address").run(clients, account=web, region="us-west-2",
                                                         allocation_id=org["eips"][web])
    assert out.ok and out.after["state"] == "released"
    assert assumed_ec2(role_arn(web, ROLE), "us-west-2").describe_addresses()["Addresses"] == []
    research = assumed_ec2(role_arn(org["ids"]["ml-research"], ROLE)).describe_addresses()["Addresses"]
    assert len(research) == 1  # another account is untouched


def test_select_accounts_filters_status_management_include_and_exclude():
    accounts = [OrgAccount("100000000001", "ml-a", "ACTIVE"), OrgAccount("100000000002", "ml-b", "SUSPENDED"),
                OrgAccount("100000000003", "web", "ACTIVE"), OrgAccount("100000000004", "mgmt", "ACTIVE"),
                OrgAccount("100000000005", "ml-c", "PENDING_CLOSURE")]

    def ids(**kw) -> list[str]:
        return [a.id for a in select_accounts(accounts, OrganizationSettings(role_name=ROLE, **kw), "100000000004")]

    assert ids() == ["100000000001", "100000000003"]
    assert ids(include_management=True) == ["100000000001", "100000000003", "100000000004"]
    assert ids(include=["ml-*"]) == ["100000000001"]
    assert ids(exclude=["100000000003"]) == ["100000000001"]
    assert ids(include=["ml-*", "web"], exclude=["ml-a"]) == ["100000000003"]


def test_organization_config_is_validated(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("aws:\n  organization:\n    include: [ml-*]\n")
    with pytest.raises(ConfigError, match="role_name") as exc:
        load_settings(cfg)
    assert "\n" not in str(exc.value)
    cfg.write_text("aws:\n  organization:\n    role_name: CostwardenReadOnly\n    exclude: ['12345']\n")
    with pytest.raises(ConfigError, match="not a 12-digit account id: '12345'"):
        load_settings(cfg)
    cfg.write_text("aws:\n  organization: {role_name: audit/CostwardenReadOnly, exclude: ['111111111111']}\n")
    org = load_settings(cfg).aws.organization
    assert org is not None and org.role_name == "audit/CostwardenReadOnly" and org.include_management is False
