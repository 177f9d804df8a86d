"""The estate both tools sweep in bench/c7n_side_by_side.py: one moto server on 127.0.0.1, seeded
through the real EC2 API (instances, tags, volumes, addresses) with 8 days of hourly CloudWatch
history stored in moto's in-process backend (as the demo does: agent/demo/estate.py).

Each instance says what an equivalent idle-GPU policy must conclude about it, and the volumes and
addresses what the four-policy set must, so the bench can check both tools found the same things
before it compares what they cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from costwarden.agent.demo.estate import DEMO_AMI, put_metric_history, utilization_at

REGIONS = ["us-east-1", "us-west-2"]
HISTORY_DAYS = 8  # the policies look back 7 days; one more so the window is covered on every hour


@dataclass(frozen=True)
class Instance:
    name: str
    region: str
    instance_type: str
    tags: dict[str, str]
    gpu: str | None  # nvidia_smi_utilization_gpu profile (agent/demo/estate.utilization_at); None: no agent
    cpu: str  # CPUUtilization profile; every instance has it (AWS/EC2 publishes it for all)
    idle_gpu: bool = False  # what the idle-GPU policy must report
    stopped: bool = False


INSTANCES = [
    Instance("train-p4d-1", "us-east-1", "p4d.24xlarge", {"team": "research", "env": "dev", "owner": "alice"},
             "idle", "idle", idle_gpu=True),
    Instance("train-g5-2", "us-east-1", "g5.2xlarge", {"team": "research", "env": "dev"}, "idle", "idle",
             idle_gpu=True),
    Instance("vision-g6", "us-west-2", "g6.xlarge", {"team": "vision", "env": "staging", "owner": "bob"},
             "idle", "idle", idle_gpu=True),
    Instance("infer-p5", "us-east-1", "p5.48xlarge", {"team": "platform", "env": "prod", "owner": "carol"},
             "busy", "busy"),
    Instance("search-g5", "us-west-2", "g5.xlarge", {"team": "search", "env": "prod"}, "busy", "busy"),
    Instance("batch-g4dn", "us-east-1", "g4dn.xlarge", {"team": "search", "env": "dev"}, None, "idle",
             idle_gpu=True),  # no GPU agent: CPU and network stand in
    Instance("ml-g5-noagent", "us-west-2", "g5.4xlarge", {"team": "ml", "env": "prod", "owner": "dan"}, None, "busy"),
    Instance("old-g5-stopped", "us-east-1", "g5.xlarge", {"team": "ml", "env": "dev"}, "idle", "idle", stopped=True),
    Instance("web-1", "us-east-1", "m5.xlarge", {"team": "web", "env": "prod", "owner": "erin"}, None, "busy"),
    Instance("web-2", "us-east-1", "m5.xlarge", {"team": "web", "env": "dev"}, None, "idle"),
    Instance("web-3", "us-west-2", "m5.xlarge", {"team": "web", "env": "prod", "owner": "erin"}, None, "busy"),
]


@dataclass
class Seeded:
    """Ids of what was created, and the answers each policy must give (resource ids)."""

    instances: dict[str, str] = field(default_factory=dict)  # name -> instance id
    expected: dict[str, set[str]] = field(default_factory=dict)  # policy name -> resource ids


def _hourly(kind: str, hours: list[datetime], seed: str, scale: float = 1.0) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    return [(ts, round(scale * utilization_at(kind, ts.hour, rng), 3)) for ts in hours]


def _history(account: str, inst: Instance, iid: str, hours: list[datetime]) -> None:
    dims = [{"Name": "InstanceId", "Value": iid}]

    def put(namespace: str, metric: str, unit: str, points: list[tuple[datetime, float]]) -> None:
        put_metric_history(account, inst.region, namespace, [
            {"MetricName": metric, "Dimensions": dims, "Timestamp": ts, "Value": v, "Unit": unit} for ts, v in points])

    put("AWS/EC2", "CPUUtilization", "Percent", _hourly(inst.cpu, hours, f"{inst.name}/cpu"))
    net = 2e3 if inst.cpu == "idle" else 5e7  # bytes per hour per percent: ~1 MB/h idle, GB/h busy
    put("AWS/EC2", "NetworkIn", "Bytes", _hourly(inst.cpu, hours, f"{inst.name}/in", net))
    put("AWS/EC2", "NetworkOut", "Bytes", _hourly(inst.cpu, hours, f"{inst.name}/out", net))
    if inst.gpu is not None:
        put("CWAgent", "nvidia_smi_utilization_gpu", "Percent", _hourly(inst.gpu, hours, f"{inst.name}/gpu"))


def seed(session: Any, endpoint: str, now: datetime | None = None) -> Seeded:
    """Create the estate through the EC2 API; metrics and creation times go into moto's backends."""
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None, minute=0, second=0,
                                                                                   microsecond=0)
    hours = [now - timedelta(hours=h) for h in range(HISTORY_DAYS * 24, 0, -1)]
    ec2 = {r: session.client("ec2", region_name=r, endpoint_url=endpoint) for r in REGIONS}
    out = Seeded()
    for inst in INSTANCES:
        tags = [{"Key": "Name", "Value": inst.name}] + [{"Key": k, "Value": v} for k, v in inst.tags.items()]
        res = ec2[inst.region].run_instances(ImageId=DEMO_AMI, InstanceType=inst.instance_type, MinCount=1, MaxCount=1,
                                             TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        iid = res["Instances"][0]["InstanceId"]
        out.instances[inst.name] = iid
        _history(res["OwnerId"], inst, iid, hours)
        if inst.stopped:
            ec2[inst.region].stop_instances(InstanceIds=[iid])
    backend = get_backend("ec2")[DEFAULT_ACCOUNT_ID]
    volumes: set[str] = set()
    for region, size, age_days, attach in [("us-east-1", 500, 45, None), ("us-west-2", 200, 30, None),
                                           ("us-east-1", 100, 2, None),  # too new to judge
                                           ("us-east-1", 50, 60, "web-1")]:
        vid = ec2[region].create_volume(Size=size, VolumeType="gp3", AvailabilityZone=f"{region}a", TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "ml"}]}])["VolumeId"]
        backend[region].volumes[vid].create_time = now - timedelta(days=age_days)
        if attach:
            ec2[region].attach_volume(VolumeId=vid, InstanceId=out.instances[attach], Device="/dev/sdf")
        elif age_days >= 7:
            volumes.add(vid)
    addresses: set[str] = set()
    for region, attach in [("us-east-1", None), ("us-west-2", None), ("us-east-1", "web-1")]:
        alloc = ec2[region].allocate_address(Domain="vpc")["AllocationId"]
        if attach:
            ec2[region].associate_address(AllocationId=alloc, InstanceId=out.instances[attach])
        else:
            addresses.add(alloc)
    ids = out.instances
    out.expected = {
        "idle-gpu": {ids[i.name] for i in INSTANCES if i.idle_gpu},
        "dev-instances-without-owner": {ids[i.name] for i in INSTANCES
                                        if i.tags.get("env") == "dev" and "owner" not in i.tags},
        "unassociated-eips": addresses,
        "unattached-volumes": volumes,
    }
    return out
