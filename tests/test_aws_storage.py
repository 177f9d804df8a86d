"""EBS volumes, snapshots and Elastic IPs against moto: collectors, detectors in a dry-run sweep
(zero mutating calls), snapshot-then-delete and release-address with their refusals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from tests.fakes.moto_server import mutating
from costwarden.tools.aws.session import AwsClients
from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.registry import get_tool

POLICIES = """
policies:
  - name: unattached-volumes
    resource: aws.ebs-volume
    mode: approve
    filters:
      - type: unattached-volume
        min_age_days: 0
    actions:
      - snapshot-and-delete
  - name: orphaned-snapshots
    resource: aws.ebs-snapshot
    filters:
      - type: orphaned-snapshot
        min_age_days: 30
  - name: idle-addresses
    resource: aws.elastic-ip
    mode: approve
    filters:
      - unassociated-eip
    actions:
      - release-address
"""
ACCOUNT = "123456789012"


@pytest.fixture
def storage_estate(aws) -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    inst = ec2.run_instances(ImageId="ami-0c0ffee0c0ffee000", InstanceType="m5.large", MinCount=1, MaxCount=1)
    iid = inst["Instances"][0]["InstanceId"]
    loose = ec2.create_volume(Size=500, VolumeType="gp3", AvailabilityZone="us-east-1a",
                              TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "ml"}]}])
    attached = ec2.create_volume(Size=100, VolumeType="gp3", AvailabilityZone="us-east-1a")
    ec2.attach_volume(VolumeId=attached["VolumeId"], InstanceId=iid, Device="/dev/sdf")
    doomed = ec2.create_volume(Size=200, VolumeType="gp2", AvailabilityZone="us-east-1a")
    orphan = ec2.create_snapshot(VolumeId=doomed["VolumeId"], Description="nightly")
    kept = ec2.create_snapshot(VolumeId=attached["VolumeId"], Description="nightly")
    ec2.delete_volume(VolumeId=doomed["VolumeId"])
    free = ec2.allocate_address(Domain="vpc")
    used = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=used["AllocationId"], InstanceId=iid)
    aws.clear_calls()
    return {"loose": loose["VolumeId"], "attached": attached["VolumeId"], "orphan": orphan["SnapshotId"],
            "kept": kept["SnapshotId"], "free": free["AllocationId"], "used": used["AllocationId"], "instance": iid}


def _policies(tmp_path: Path):
    f = tmp_path / "storage.yml"
    f.write_text(POLICIES)
    return load_policy_file(f)


def test_dry_run_finds_loose_volume_orphan_snapshot_and_free_address_with_zero_mutating_calls(
        aws, storage_estate, state_dir, tmp_path, no_costwarden_env):
    # snapshots moto just made are minutes old: judge them 40 days from now
    later = datetime.now(timezone.utc) + timedelta(days=40)
    settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"]))
    result = run_sweep(settings, _policies(tmp_path), dry_run=True, now=later)

    assert result.errors == []
    by_policy = {f.policy: f for f in result.findings}
    assert {f.resource_id for f in result.findings} == {storage_estate["loose"], storage_estate["orphan"],
                                                         storage_estate["free"]}
    assert by_policy["unattached-volumes"].monthly_waste_usd == Decimal("40.00")  # 500 GB gp3
    assert by_policy["orphaned-snapshots"].monthly_waste_usd == Decimal("10.00")  # 200 GB source
    assert by_policy["idle-addresses"].monthly_waste_usd == Decimal("3.65")
    # moto also lists Amazon's public AMI snapshots as "self": they are not the account's and are skipped
    assert all(f.account == ACCOUNT for f in result.findings)
    actions = {a.action: a for a in result.actions}
    assert set(actions) == {"snapshot-and-delete", "release-address"}
    assert actions["snapshot-and-delete"].projected_monthly_savings_usd == Decimal("15.00")  # 40 less the snapshot
    assert {a.status for a in result.actions} == {"dry_run"}

    calls = aws.calls
    assert mutating(calls) == [] and result.refused_calls == {}
    assert "GetMetricData" not in calls  # these detectors need inventory only


def test_snapshot_then_delete_verifies_the_snapshot_before_deleting(aws, storage_estate):
    spec = get_tool("aws.ebs-volume.snapshot_and_delete")
    clients = AwsClients(dry_run=False)
    args = {"account": ACCOUNT, "region": "us-east-1", "volume_id": storage_estate["loose"]}
    before = spec.observe(clients, **args)
    assert before["state"] == "available" and before["size_gb"] == 500
    out = spec.run(clients, **args, poll_s=0.1)
    assert out.ok and out.after["state"] == "deleted" and out.after["snapshot_state"] == "completed"
    assert spec.is_done(out.after)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    snap = ec2.describe_snapshots(SnapshotIds=[out.after["snapshot_id"]])["Snapshots"][0]
    assert snap["VolumeId"] == storage_estate["loose"] and snap["State"] == "completed"
    assert {"Key": "costwarden:source-volume", "Value": storage_estate["loose"]} in snap["Tags"]
    assert {"Key": "team", "Value": "ml"} in snap["Tags"]
    calls = mutating(aws.calls)
    assert calls.index("CreateSnapshot") < calls.index("DeleteVolume")
    # again: already gone, nothing to do
    assert spec.run(clients, **args).detail.startswith("already deleted")


def test_snapshot_then_delete_refuses_an_attached_volume_and_dry_run(aws, storage_estate):
    spec = get_tool("aws.ebs-volume.snapshot_and_delete")
    with pytest.raises(ToolError, match="only unattached volumes"):
        spec.run(AwsClients(dry_run=False), account=ACCOUNT, region="us-east-1", volume_id=storage_estate["attached"])
    with pytest.raises(DryRunViolation):
        spec.run(AwsClients(dry_run=True), account=ACCOUNT, region="us-east-1", volume_id=storage_estate["loose"])
    assert mutating(aws.calls) == []


def test_release_address_releases_only_an_unassociated_one(aws, storage_estate):
    spec = get_tool("aws.elastic-ip.release_address")
    clients = AwsClients(dry_run=False)
    with pytest.raises(ToolError, match="associated again"):
        spec.run(clients, account=ACCOUNT, region="us-east-1", allocation_id=storage_estate["used"])
    out = spec.run(clients, account=ACCOUNT, region="us-east-1", allocation_id=storage_estate["free"])
    assert out.ok and out.after["state"] == "released" and spec.is_done(out.after)
    left = boto3.client("ec2", region_name="us-east-1").describe_addresses()["Addresses"]
    assert [a["AllocationId"] for a in left] == [storage_estate["used"]]
    assert mutating(aws.calls) == ["ReleaseAddress"]


def test_the_aws_estate_pack_dry_run_over_every_new_resource_type_makes_zero_mutating_calls(
        aws, storage_estate, state_dir, no_costwarden_env):
    from costwarden.policies.loader import default_pack_path

    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/x",
                    PrimaryContainer={"Image": "img:1"})
    sm.create_endpoint_config(EndpointConfigName="old-config", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="old-endpoint", EndpointConfigName="old-config")
    aws.clear_calls()
    pack = default_pack_path().parent / "aws-estate.yml"
    settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1", "us-west-2"]))
    result = run_sweep(settings, load_policy_file(pack), dry_run=True,
                       now=datetime.now(timezone.utc) + timedelta(days=100))

    assert result.errors == []
    assert {f.policy for f in result.findings} == {"zombie-endpoints", "idle-elastic-ips", "unattached-ebs-volumes",
                                                   "orphaned-ebs-snapshots"}
    assert {f.resource_id for f in result.findings if f.policy == "zombie-endpoints"} == {"old-endpoint"}
    assert mutating(aws.calls) == [] and result.refused_calls == {}
    assert {a.status for a in result.actions} == {"dry_run"}
