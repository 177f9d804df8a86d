"""The demo estate: a moto server inside this process, on a free loopback port, seeded with a
small but realistic GPU fleet and 14 days of hourly metrics. The real boto3 code path runs
against it, so a newcomer sees the product work with no cloud account.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Callable, Iterator
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
    gpu: str | None  # profile of nvidia_smi_utilization_gpu (see utilization_at); None: agent not installed
    cpu: str  # profile of CPUUtilization (see utilization_at); seeded only where the GPU metric is not (_series)
    gpu_memory_gib: float | None = None  # nvidia_smi_memory_used of the fullest GPU; None: not reported


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
    # Training hardware serving a model: GPUs at ~20% and ~16 GiB held per GPU, which a cheaper
    # inference-class type holds (training-hardware-for-inference). A GPU dev box busy 08:00-20:00 UTC
    # and idle every night (off-hours-idle).
    DemoInstance("chatbot-inference", "us-east-1", "p4d.24xlarge", {"team": "product", "env": "prod"},
                 "serving", "busy", gpu_memory_gib=15.5),
    DemoInstance("vision-dev", "us-east-1", "g5.12xlarge", {"team": "vision", "env": "dev"}, "office", "office"),
]


def utilization_at(kind: str, hour: int, rng: random.Random) -> float:
    """Utilization (%) at a UTC hour: idle (~0.6%), busy (55-90%, daily wave), serving (8-35%,
    ~20% average: never idle, never near capacity) or office (busy 08:00-20:00 UTC, idle otherwise)."""
    if kind == "idle" or (kind == "office" and not 8 <= hour < 20):
        return max(0.0, rng.gauss(0.6, 0.4))
    if kind == "office":
        return 50 + 40 * rng.random()
    diurnal = 0.5 + 0.5 * math.sin((hour % 24) / 24 * 2 * math.pi)
    if kind == "serving":
        return min(35.0, max(8.0, 14 + 12 * diurnal + rng.gauss(0, 2.5)))
    return min(100.0, 55 + 35 * diurnal + rng.gauss(0, 4))


def _series(inst: DemoInstance) -> list[tuple[str, str, str, Callable[[int, random.Random], float]]]:
    """(namespace, metric, unit, value at a UTC hour) of the series seeded for an instance: the ones a
    detector reads, no more. The GPU agent's where it runs (every detector reads GPU first); else CPU,
    and network where the CPU is idle (only then does idle-gpu's fallback look at it). moto's
    GetMetricData scans every stored datapoint of the region for every hour of every query, so each
    series nobody reads would slow every query of the demo."""
    if inst.gpu is not None:
        gpu = inst.gpu
        out = [("CWAgent", "nvidia_smi_utilization_gpu", "Percent", lambda h, rng: utilization_at(gpu, h, rng))]
        if (mem_gib := inst.gpu_memory_gib) is not None:  # MiB, like nvidia-smi's memory.used
            out.append(("CWAgent", "nvidia_smi_memory_used", "Megabytes",
                        lambda h, rng: mem_gib * 1024 * (1 + 0.03 * rng.random())))
        return out
    cpu = inst.cpu
    out = [("AWS/EC2", "CPUUtilization", "Percent", lambda h, rng: utilization_at(cpu, h, rng))]
    if cpu == "idle":
        out += [("AWS/EC2", "NetworkIn", "Bytes", lambda h, rng: 2e5 * rng.random()),
                ("AWS/EC2", "NetworkOut", "Bytes", lambda h, rng: 1e5 * rng.random())]
    return out


def demo_session() -> Any:
    """A boto3 session with the demo's dummy credentials, on the process's shared model loader: the
    service models the seeding parses (EC2's alone ~0.3 s) are the ones the sweep's clients reuse."""
    import boto3

    from costwarden.tools.aws.reuse import shared_models_session

    return boto3.Session(botocore_session=shared_models_session(),
                         **{k.lower(): v for k, v in DEMO_ENV.items() if k != "AWS_DEFAULT_REGION"})


def put_metric_history(account: str, region: str, namespace: str, data: list[dict[str, Any]]) -> None:
    """Store datapoints as PutMetricData would, straight into moto's CloudWatch backend.

    The demo's (and the tests') moto server runs in this process, so the history is handed to the
    backend's own `put_metric_data` in one call instead of thousands of datapoints serialized into
    HTTP requests and parsed back (about 5 s of the demo's start, for nothing the audit reads: the
    audit's GetMetricData still goes through real boto3 and moto's HTTP API). moto keeps
    timestamps as naive UTC, which is what its request parser hands the backend too.
    """
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[account][region].put_metric_data(namespace, data)


def seed_estate(endpoint_url: str, *, days: int = 14, now: datetime | None = None,
                estate: list[DemoInstance] = ESTATE, session: Any = None) -> dict[str, str]:
    """Create the instances (RunInstances through the API) and their metric history (hourly, in the
    in-process moto backend: see put_metric_history); return {Name tag: instance id}."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:  # moto keeps naive UTC (botocore reads a naive timestamp as UTC too)
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    now = now.replace(minute=0, second=0, microsecond=0)
    hours = [now - timedelta(hours=h) for h in range(days * 24, 0, -1)]
    session = session or demo_session()
    ec2: dict[str, Any] = {}  # one client a region
    ids: dict[str, str] = {}
    for inst in estate:
        if inst.region not in ec2:
            ec2[inst.region] = session.client("ec2", region_name=inst.region, endpoint_url=endpoint_url)
        tags = [{"Key": "Name", "Value": inst.name}] + [{"Key": k, "Value": v} for k, v in inst.tags.items()]
        res = ec2[inst.region].run_instances(ImageId=DEMO_AMI, InstanceType=inst.instance_type, MinCount=1,
                                             MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        iid = res["Instances"][0]["InstanceId"]
        ids[inst.name] = iid
        for namespace, metric, unit, fn in _series(inst):
            rng = random.Random(f"{inst.name}/{metric}")  # one stream a series: adding one shifts no other
            put_metric_history(res["OwnerId"], inst.region, namespace, [
                {"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": iid}], "Timestamp": ts,
                 "Value": round(fn(ts.hour, rng), 3), "Unit": unit} for ts in hours])
    return ids


def _moto_server() -> Any:
    """moto's ThreadedMotoServer, its loop polling for stop() every 0.1 s, not 0.5 s: every demo
    ends by stopping it, and waiting out the poll was a quarter of a second of each exit."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class QuickStopMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto's own, with the poll interval
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=0.1)

    return QuickStopMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


@contextmanager
def demo_estate(days: int = 14) -> Iterator[dict[str, Any]]:
    """Start moto on 127.0.0.1:<free port>, seed it, and point boto3 at it for the duration."""
    try:
        server = _moto_server()
    except ImportError:
        from costwarden.tools.errors import ToolError

        raise ToolError("--demo needs moto, which is not installed: pip install 'costwarden[demo]'") from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines in the user's terminal
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in [*DEMO_ENV, "AWS_ENDPOINT_URL", "MOTO_EC2_LOAD_DEFAULT_AMIS"]}
    # Demo credentials and endpoint replace any real ones, so the demo can never touch a real account.
    os.environ.update(DEMO_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    # moto's public AMI catalogue (thousands of images a region) is read by every DescribeImages,
    # which the snapshot inventory calls (Owners=self) to find the snapshots AMIs use: the demo's
    # instances need no real AMI, so leaving it out saves about a second a region
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    try:
        session = demo_session()
        ids = seed_estate(endpoint, days=days, session=session)
        from costwarden.agent.demo.waste import seed_waste

        waste = seed_waste(session, endpoint, now=datetime.now(timezone.utc))  # endpoint, volume, snapshot, EIP
        import tempfile
        from pathlib import Path

        from costwarden.agent.demo.billing import write_demo_billing
        from costwarden.agent.demo.gateway import write_demo_gateway

        from costwarden.agent.demo.gcp import gcp_demo_estate
        from costwarden.agent.demo.moto_metrics import indexed_get_metric_data

        with tempfile.TemporaryDirectory(prefix="costwarden-demo-billing-") as billing_dir, \
                gcp_demo_estate(days=days) as gcp, \
                indexed_get_metric_data():  # the same answers as moto's GetMetricData, without its quadratic scan
            billing = write_demo_billing(Path(billing_dir), days=days)  # FOCUS export + OTel token usage
            gateway = write_demo_gateway(Path(billing_dir) / "gateway-config")  # the LiteLLM config's git repo
            yield {"endpoint_url": endpoint, "regions": DEMO_REGIONS, "instances": ids, "waste": waste,
                   "billing": billing, **({"gateway": gateway} if gateway else {}),
                   "gcp": gcp["gcp"], "prometheus": gcp["prometheus"], "pricing": gcp["pricing"]}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
