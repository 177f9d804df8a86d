"""The demo's waste beyond GPU instances: a zombie SageMaker endpoint, an unattached EBS volume, an
unassociated Elastic IP and an old orphaned snapshot, so `audit --demo` shows the AWS estate
pack's detectors (policies/packs/aws-estate.yml) at work too.

Each detector judges age (an endpoint younger than its lookback, a volume younger than a week, a
snapshot younger than 90 days is not waste yet), and moto stamps every resource "now". The demo's
moto server runs in this process, so the seeded resources are aged in its backends directly;
nothing here reaches a real account.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

REGION = "us-east-1"
ENDPOINT = "support-bot-staging"  # deployed for a pilot, never called since
ENDPOINT_TYPE = "ml.g5.2xlarge"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-demo"


def seed_waste(session: Any, endpoint_url: str, *, now: datetime) -> dict[str, str]:
    """Create the four resources in `REGION`, aged past their detectors' thresholds; return their ids."""
    ec2 = session.client("ec2", region_name=REGION, endpoint_url=endpoint_url)
    sm = session.client("sagemaker", region_name=REGION, endpoint_url=endpoint_url)
    tags = [{"Key": "team", "Value": "support"}, {"Key": "env", "Value": "staging"}]
    _create_endpoint(sm, tags)
    volume = ec2.create_volume(Size=500, VolumeType="gp3", AvailabilityZone=f"{REGION}a", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "old-training-scratch"}, *tags]}])["VolumeId"]
    source = ec2.create_volume(Size=1000, VolumeType="gp3", AvailabilityZone=f"{REGION}a")["VolumeId"]
    snapshot = ec2.create_snapshot(VolumeId=source, Description="dataset-v1 before migration", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": tags}])["SnapshotId"]
    ec2.delete_volume(VolumeId=source)  # the snapshot outlives its volume: orphaned
    address = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": tags}])["AllocationId"]
    _age(endpoint=ENDPOINT, volume=volume, snapshot=snapshot, now=now)
    return {"endpoint": ENDPOINT, "volume": volume, "snapshot": snapshot, "address": address}


def _create_endpoint(sm: Any, tags: list[dict[str, str]]) -> None:
    # moto 5.2 knows only older ml. types (p2, p3, g4dn, ...): allow a current one while creating it
    from moto.sagemaker.models import FakeEndpointConfig

    check = FakeEndpointConfig.validate_instance_type
    FakeEndpointConfig.validate_instance_type = lambda self, t: None  # type: ignore[method-assign]
    try:
        sm.create_model(ModelName=f"{ENDPOINT}-model", ExecutionRoleArn=ROLE,
                        PrimaryContainer={"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/tgi:2.1"})
        sm.create_endpoint_config(EndpointConfigName=f"{ENDPOINT}-config", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": f"{ENDPOINT}-model", "InitialInstanceCount": 1,
             "InstanceType": ENDPOINT_TYPE}])
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-config", Tags=tags)
    finally:
        FakeEndpointConfig.validate_instance_type = check  # type: ignore[method-assign]


def _age(*, endpoint: str, volume: str, snapshot: str, now: datetime) -> None:
    """Backdate creation times in moto's in-process backends (naive UTC, like moto's own)."""
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    naive = now.replace(tzinfo=None)
    ec2 = get_backend("ec2")[DEFAULT_ACCOUNT_ID][REGION]
    ec2.volumes[volume].create_time = naive - timedelta(days=45)
    ec2.snapshots[snapshot].start_time = naive - timedelta(days=200)
    get_backend("sagemaker")[DEFAULT_ACCOUNT_ID][REGION].endpoints[endpoint].creation_time = naive - timedelta(days=30)
