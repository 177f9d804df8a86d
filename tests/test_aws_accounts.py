"""Many accounts through STS AssumeRole (moto keeps each assumed account's resources apart),
an account whose role cannot be assumed, and a throttled API the sweep survives."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from costwarden.agent.config import AwsSettings, ConfigError, Settings, load_settings
from costwarden.agent.engine.sweep import run_sweep
from tests.fakes.moto_server import mutating
from tests.throttling_proxy import ThrottlingProxy, fast_backoff
from tests.multi_account import ROLE_A, ROLE_B, ROLE_DENIED, assumed_ec2, deny_role, eip_policies
from costwarden.tools.aws.session import AwsClients
from costwarden.tools.registry import get_tool

@pytest.fixture
def two_accounts(aws) -> dict[str, list[str]]:
    """Account A holds one free address in us-east-1; account B two, one of them in us-west-2."""
    out = {"A": [assumed_ec2(ROLE_A).allocate_address(Domain="vpc")["AllocationId"]],
           "B": [assumed_ec2(ROLE_B).allocate_address(Domain="vpc")["AllocationId"],
                 assumed_ec2(ROLE_B, "us-west-2").allocate_address(Domain="vpc")["AllocationId"]]}
    aws.clear_calls()
    return out


def _settings(state_dir: Path, accounts: list[str], **kw) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1", "us-west-2"], accounts=accounts), **kw)


def test_each_assumed_account_sees_only_its_own_resources(aws, two_accounts, state_dir, tmp_path,
                                                          no_costwarden_env):
    result = run_sweep(_settings(state_dir, [ROLE_A, ROLE_B]), eip_policies(tmp_path), dry_run=True)
    assert result.errors == []
    found = {(f.account, f.region, f.resource_id) for f in result.findings}
    assert found == {("111111111111", "us-east-1", two_accounts["A"][0]),
                     ("222222222222", "us-east-1", two_accounts["B"][0]),
                     ("222222222222", "us-west-2", two_accounts["B"][1])}
    assert result.inventoried == 3
    assert aws.calls.count("AssumeRole") == 2  # once per account, cached for every region and service
    assert mutating(aws.calls) == []


def test_an_account_whose_role_cannot_be_assumed_is_reported_and_the_rest_go_on(
        aws, two_accounts, state_dir, tmp_path, no_costwarden_env, monkeypatch):
    deny_role(monkeypatch, ROLE_DENIED)
    result = run_sweep(_settings(state_dir, [ROLE_A, ROLE_DENIED, ROLE_B]), eip_policies(tmp_path), dry_run=True)
    assert result.status == "partial"
    [err] = result.errors
    assert ROLE_DENIED in err and "AccessDenied" in err and "\n" not in err
    assert {f.account for f in result.findings} == {"111111111111", "222222222222"}


def test_an_action_runs_in_the_account_of_its_finding(aws, two_accounts):
    spec = get_tool("aws.elastic-ip.release_address")
    clients = AwsClients(dry_run=False, role_arns=[ROLE_A, ROLE_B])
    out = spec.run(clients, account="222222222222", region="us-west-2", allocation_id=two_accounts["B"][1])
    assert out.ok and out.after["state"] == "released"
    assert [a["AllocationId"] for a in assumed_ec2(ROLE_B, "us-west-2").describe_addresses()["Addresses"]] == []
    assert len(assumed_ec2(ROLE_A).describe_addresses()["Addresses"]) == 1  # the other account is untouched


def test_role_arns_are_validated_in_config(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("aws:\n  regions: [us-east-1]\n  accounts:\n    - arn:aws:iam::111111111111:role/ok\n"
                   "    - \"222222222222\"\n")
    with pytest.raises(ConfigError, match="not an IAM role ARN") as exc:
        load_settings(cfg)
    assert exc.value.line == 3 and "'222222222222'" in str(exc.value)  # the list's line, naming the bad entry
    cfg.write_text("aws:\n  accounts: [arn:aws:iam::111111111111:role/costwarden-audit]\n")
    assert load_settings(cfg).aws.accounts == ["arn:aws:iam::111111111111:role/costwarden-audit"]


def test_a_throttled_api_is_retried_and_the_sweep_survives(aws, state_dir, tmp_path, no_costwarden_env,
                                                          monkeypatch):
    """The first two sends of GetCallerIdentity, DescribeAddresses and GetMetricData are answered with
    their protocol's throttling error by a proxy in front of moto: botocore retries them, nothing else does."""
    from costwarden.agent.demo.estate import seed_estate
    from costwarden.policies.loader import load_policies

    ids = seed_estate(aws.endpoint, days=8)
    allocated = boto3.client("ec2", region_name="us-east-1").allocate_address(Domain="vpc")["AllocationId"]
    aws.clear_calls()
    proxy = ThrottlingProxy(aws.endpoint, first={"GetCallerIdentity": 2, "DescribeAddresses": 2,
                                                 "GetMetricData": 2}).start()
    fast_backoff(monkeypatch)
    try:
        settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"], endpoint_url=proxy.endpoint))
        result = run_sweep(settings, [*load_policies([]), *eip_policies(tmp_path)], dry_run=True)
    finally:
        proxy.stop()

    assert {op: n for (_, op), n in proxy.throttled.items()} == {
        "GetCallerIdentity": 2, "DescribeAddresses": 2, "GetMetricData": 2}
    assert result.errors == [] and result.status == "done"
    assert {k: result.retries[k] for k in ("sts.GetCallerIdentity", "ec2.DescribeAddresses",
                                            "cloudwatch.GetMetricData")} == {
        "sts.GetCallerIdentity": 2, "ec2.DescribeAddresses": 2, "cloudwatch.GetMetricData": 2}
    found = {f.resource_id for f in result.findings}
    assert {ids["llm-finetune-01"], ids["llm-finetune-02"], allocated} <= found


def test_retry_settings_are_validated_and_reach_botocore(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("aws:\n  retries:\n    mode: adaptive\n    max_attempts: 8\n")
    aws_settings = load_settings(cfg).aws
    clients = AwsClients(dry_run=True, retries=aws_settings.retries)
    ec2 = clients.client("ec2", "us-east-1")
    assert ec2.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 8}
    assert load_settings(None).aws.retries.mode == "standard"
    cfg.write_text("aws:\n  retries:\n    max_attempts: 0\n")
    with pytest.raises(ConfigError, match="max_attempts"):
        load_settings(cfg)
    cfg.write_text("aws:\n  retries:\n    mode: legacy\n")
    with pytest.raises(ConfigError, match="mode"):
        load_settings(cfg)


def test_assumed_credentials_are_renewed_by_botocore_for_the_same_client(aws, two_accounts):
    """No keys cached by hand: near expiry, botocore's RefreshableCredentials assume the role again
    and the client already built signs with the new keys."""
    from datetime import timedelta

    clients = AwsClients(dry_run=True, role_arns=[ROLE_A])
    [view] = clients.accounts()
    assert view.account_id("us-east-1") == "111111111111"
    ec2 = view.client("ec2", "us-east-1")
    assert [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]] == two_accounts["A"]
    creds = clients._role(ROLE_A, "us-east-1").credentials()
    old_key = creds.get_frozen_credentials().access_key
    assert aws.calls.count("AssumeRole") == 1

    real_clock = creds._time_fetcher
    creds._time_fetcher = lambda: real_clock() + timedelta(minutes=55)  # 5 minutes before they expire
    try:
        assert [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]] == two_accounts["A"]
    finally:
        creds._time_fetcher = real_clock
    assert aws.calls.count("AssumeRole") == 2
    assert creds.get_frozen_credentials().access_key != old_key
    assert view.client("ec2", "us-east-1") is ec2  # one client per (service, region, role), never rebuilt
