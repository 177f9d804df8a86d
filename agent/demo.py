"""The demo estate: a moto server inside this process, on a free loopback port, seeded with a
small but realistic GPU fleet and 14 days of hourly metrics. The real boto3 code path runs
against it, so a newcomer sees the product work with no cloud account.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

DEMO_REGIONS = ["us-east-1", "us-west-2"]
DEMO_AMI = "ami-0c0ffee0c0ffee000"  # moto does not check AMIs; listing its catalogue costs ~3 s a region
DEMO_ENV = {"AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_SESSION_TOKEN": "demo",
            "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class DemoInstance:
    name: str
    region: str
    instance_type: str
    tags: dict[str, str]
    gpu: str | None  # profile of nvidia_smi_utilization_gpu: idle | busy | None (agent not installed)
    cpu: str  # idle | busy


ESTATE = [
    DemoInstance("llm-finetune-01", "us-east-1", "p4d.24xlarge", {"team": "research", "env": "staging"}, "idle", "idle"),
    DemoInstance("llm-finetune-02", "us-east-1", "p4d.24xlarge", {"team": "research", "env": "dev"}, "idle", "idle"),
    DemoInstance("inference-h100", "us-east-1", "p5.48xlarge", {"team": "platform", "env": "prod"}, "busy", "busy"),
    DemoInstance("embeddings-batch", "us-east-1", "g5.2xlarge", {"team": "search", "env": "prod"}, None, "idle"),
    DemoInstance("notebook-alice", "us-west-2", "g5.xlarge",
                 {"team": "research", "env": "dev", "costwarden:protect": "true"}, "idle", "idle"),
    DemoInstance("web-1", "us-east-1", "m5.xlarge", {"team": "web", "env": "prod"}, None, "busy"),
    DemoInstance("web-2", "us-east-1", "m5.xlarge", {"team": "web", "env": "prod"}, None, "busy"),
    DemoInstance("web-3", "us-west-2", "m5.xlarge", {"team": "web", "env": "prod"}, None, "busy"),
]


def _profile(kind: str, hour: int, rng: random.Random) -> float:
    if kind == "idle":
        return max(0.0, rng.gauss(0.6, 0.4))
    diurnal = 0.5 + 0.5 * math.sin((hour % 24) / 24 * 2 * math.pi)
    return min(100.0, 55 + 35 * diurnal + rng.gauss(0, 4))


def seed_estate(endpoint_url: str, *, days: int = 14, now: datetime | None = None,
                estate: list[DemoInstance] = ESTATE) -> dict[str, str]:
    """Create the instances and their metric history; return {Name tag: instance id}."""
    import boto3
    from botocore.config import Config

    # moto's server cannot read botocore's gzip-compressed PutMetricData bodies
    cfg = Config(disable_request_compression=True)
    now = (now or datetime.now(timezone.utc)).replace(minute=0, second=0, microsecond=0)
    rng = random.Random(42)
    ids: dict[str, str] = {}
    session = boto3.Session(**{k.lower(): v for k, v in DEMO_ENV.items() if k != "AWS_DEFAULT_REGION"})
    for inst in estate:
        ec2 = session.client("ec2", region_name=inst.region, endpoint_url=endpoint_url, config=cfg)
        tags = [{"Key": "Name", "Value": inst.name}] + [{"Key": k, "Value": v} for k, v in inst.tags.items()]
        res = ec2.run_instances(ImageId=DEMO_AMI, InstanceType=inst.instance_type, MinCount=1, MaxCount=1,
                                TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        iid = res["Instances"][0]["InstanceId"]
        ids[inst.name] = iid
        cw = session.client("cloudwatch", region_name=inst.region, endpoint_url=endpoint_url, config=cfg)
        hours = [now - timedelta(hours=h) for h in range(days * 24, 0, -1)]
        series: list[tuple[str, str, Any]] = [("AWS/EC2", "CPUUtilization", lambda h: _profile(inst.cpu, h, rng)),
                                              ("AWS/EC2", "NetworkIn", lambda h: (2e5 if inst.cpu == "idle" else 4e9) * rng.random()),
                                              ("AWS/EC2", "NetworkOut", lambda h: (1e5 if inst.cpu == "idle" else 2e9) * rng.random())]
        if inst.gpu:
            series.append(("CWAgent", "nvidia_smi_utilization_gpu", lambda h: _profile(inst.gpu, h, rng)))
        for namespace, metric, fn in series:
            data = [{"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": iid}],
                     "Timestamp": ts, "Value": round(fn(ts.hour), 3),
                     "Unit": "Percent" if "util" in metric.lower() else "Bytes"} for ts in hours]
            for i in range(0, len(data), 1000):
                cw.put_metric_data(Namespace=namespace, MetricData=data[i:i + 1000])
    return ids


@contextmanager
def demo_estate(days: int = 14) -> Iterator[dict[str, Any]]:
    """Start moto on 127.0.0.1:<free port>, seed it, and point boto3 at it for the duration."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        from tools.errors import ToolError

        raise ToolError("--demo needs moto, which is not installed: pip install 'costwarden[demo]'") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines in the user's terminal
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in [*DEMO_ENV, "AWS_ENDPOINT_URL"]}
    # Demo credentials and endpoint replace any real ones, so the demo can never touch a real account.
    os.environ.update(DEMO_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        ids = seed_estate(endpoint, days=days)
        import tempfile
        from pathlib import Path

        from agent.demo_billing import write_demo_billing

        from agent.demo_gcp import gcp_demo_estate

        with tempfile.TemporaryDirectory(prefix="costwarden-demo-billing-") as billing_dir, \
                gcp_demo_estate(days=days) as gcp:  # a GCP project and a Prometheus-scraped GPU cluster
            billing = write_demo_billing(Path(billing_dir), days=days)  # FOCUS export + OTel token usage
            yield {"endpoint_url": endpoint, "regions": DEMO_REGIONS, "instances": ids, "billing": billing,
                   "gcp": gcp["gcp"], "prometheus": gcp["prometheus"], "pricing": gcp["pricing"]}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
