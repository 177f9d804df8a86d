"""What the multi-account tests share (test_aws_accounts, test_aws_organizations): role ARNs moto
keeps apart, EC2 clients inside an assumed role, a role IAM refuses, and the EIP policy they sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from costwarden.policies.loader import LoadedPolicy, load_policy_file

ROLE_A = "arn:aws:iam::111111111111:role/costwarden-audit"
ROLE_B = "arn:aws:iam::222222222222:role/costwarden-audit"
ROLE_DENIED = "arn:aws:iam::333333333333:role/costwarden-audit"
EIP_POLICY = """
policies:
  - name: idle-addresses
    resource: aws.elastic-ip
    mode: approve
    filters:
      - unassociated-eip
    actions:
      - release-address
"""


def assumed_ec2(role_arn: str, region: str = "us-east-1") -> Any:
    """An EC2 client inside the account of `role_arn`, for seeding and checking that account."""
    creds = boto3.client("sts", region_name=region).assume_role(RoleArn=role_arn, RoleSessionName="seed")["Credentials"]
    return boto3.client("ec2", region_name=region, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def eip_policies(tmp_path: Path) -> list[LoadedPolicy]:
    f = tmp_path / "eip.yml"
    f.write_text(EIP_POLICY)
    return load_policy_file(f)


def deny_role(monkeypatch: pytest.MonkeyPatch, role_arn: str) -> None:
    """Every boto3 Session our clients make (each role's Session copies the base's handlers) refuses AssumeRole of `role_arn`, as IAM would."""
    real = boto3.Session

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("RoleArn") == role_arn:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": f"not authorized to assume {role_arn}"}},
                              "AssumeRole")

    def make(*args: Any, **kwargs: Any) -> Any:
        s = real(*args, **kwargs)
        s.events.register("provide-client-params.sts.AssumeRole", deny)
        return s

    monkeypatch.setattr(boto3, "Session", make)


ORG_ROLE = "CostwardenReadOnly"
ORG_POLICIES = """
policies:
  - name: idle-gpu-instances
    resource: aws.ec2
    mode: approve
    filters: [{type: idle-gpu, lookback_days: 1}]
    actions: [stop]
  - name: idle-addresses
    resource: aws.elastic-ip
    mode: approve
    filters: [unassociated-eip]
    actions: [release-address]
"""


def organization_estate(endpoint: str, tmp_path: Path, instances: tuple[str, ...]) -> dict[str, Any]:
    """The demo's `instances` and an address in the management account, an organisation with one
    member account (reached through ORG_ROLE) holding an address of its own, and ORG_POLICIES:
    STS, Organizations, EC2 and CloudWatch calls over several protocols."""
    from costwarden.agent.demo.estate import ESTATE, seed_estate
    from costwarden.tools.aws.organizations import role_arn

    ids = seed_estate(endpoint, days=2, estate=[i for i in ESTATE if i.name in instances])
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    member = org.create_account(AccountName="ml-research", Email="ml@example.com")["CreateAccountStatus"]["AccountId"]
    eips = [boto3.client("ec2", region_name="us-east-1").allocate_address(Domain="vpc")["AllocationId"],
            assumed_ec2(role_arn(member, ORG_ROLE)).allocate_address(Domain="vpc")["AllocationId"]]
    policy_file = tmp_path / "policies.yml"
    policy_file.write_text(ORG_POLICIES)
    return {"ids": ids, "member": member, "eips": eips, "policies": load_policy_file(policy_file)}
