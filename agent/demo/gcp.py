"""The demo's GCP project and Prometheus-scraped Kubernetes cluster.

A fake Compute Engine API, a fake Cloud Monitoring and a fake Prometheus run in this process on
free loopback ports; the real google-cloud-compute and google-cloud-monitoring clients and our
Prometheus client talk to them. The GCE instances run Google's Ops Agent, so their GPU series
(`agent.googleapis.com/gpu/utilization`, one per GPU) sit in Cloud Monitoring next to the built-in
CPU and network metrics; the Kubernetes cluster's nodes are scraped by Prometheus (NVIDIA's DCGM
exporter, matched on `kubernetes_node`). `seed_dcgm` can also give the VMs DCGM series (label
`Hostname` = instance name), for `gcp.utilization_source: prometheus`. Instance names, labels
and prices are realistic; no real account is touched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from costwarden.agent.demo.estate import utilization_at
from costwarden.agent.demo.fakes.gce import IMPLICIT_GPUS, FakeGce
from costwarden.agent.demo.fakes.monitoring import FakeMonitoring
from costwarden.agent.demo.fakes.prometheus import FakePrometheus

DEMO_PROJECT = "acme-ml-platform"
DEMO_CLUSTER = "gke-inference-prod"
GPU_MODELS = {"nvidia-tesla-a100": "NVIDIA A100-SXM4-40GB", "nvidia-a100-80gb": "NVIDIA A100-SXM4-80GB",
              "nvidia-h100-80gb": "NVIDIA H100 80GB HBM3", "nvidia-l4": "NVIDIA L4"}
# What one GPU-hour of the cluster's nodes costs: its node pool runs on a2-ultragpu-8g
# ($40.550383/h in us-central1) and g2-standard-8 ($0.853624/h), divided by their GPUs.
DEMO_GPU_PRICES = {"gpu:NVIDIA A100-SXM4-80GB": 5.068798, "gpu:NVIDIA L4": 0.853624}


@dataclass(frozen=True)
class DemoVm:
    zone: str
    name: str
    machine_type: str
    labels: dict[str, str]
    gpu: str | None  # idle | busy | None (no DCGM exporter)
    status: str = "RUNNING"


@dataclass(frozen=True)
class DemoNode:
    name: str
    gpus: int
    model: str
    busy_gpus: int  # how many of its GPUs work; the others idle


GCE_ESTATE = [
    DemoVm("us-central1-a", "llm-pretrain-a100x8", "a2-highgpu-8g", {"team": "research", "env": "dev"}, "idle"),
    DemoVm("us-central1-b", "vision-finetune", "a2-highgpu-1g", {"team": "vision", "env": "staging"}, "idle"),
    DemoVm("us-central1-a", "serving-l4-1", "g2-standard-8", {"team": "platform", "env": "prod"}, "busy"),
    DemoVm("europe-west4-a", "h100-eval-reserved", "a3-highgpu-8g",
           {"team": "research", "env": "dev", "costwarden-protect": "true"}, "idle"),
    DemoVm("us-central1-c", "old-experiment", "a2-highgpu-1g", {"team": "research"}, None, "TERMINATED"),
    DemoVm("us-central1-a", "web-frontend", "e2-standard-4", {"team": "web", "env": "prod"}, None),
]

K8S_ESTATE = [
    DemoNode("gke-inference-prod-a100-pool-7f3c", 8, "NVIDIA A100-SXM4-80GB", 0),
    DemoNode("gke-inference-prod-a100-pool-9d21", 8, "NVIDIA A100-SXM4-80GB", 1),  # one busy GPU: not idle
    DemoNode("gke-inference-prod-l4-pool-2b8e", 1, "NVIDIA L4", 1),
]


def _samples(kind: str, start: datetime, hours: int, rng: random.Random, per_hour: int = 2) -> list[tuple[float, float]]:
    step = 3600 // per_hour
    t0 = start.timestamp()
    return [(t0 + i * step, round(utilization_at(kind, int((t0 + i * step) // 3600), rng), 2))
            for i in range(hours * per_hour)]


def seed_gce(fake: FakeGce, project: str = DEMO_PROJECT, estate: list[DemoVm] = GCE_ESTATE) -> None:
    for vm in estate:
        fake.add_instance(project, vm.zone, vm.name, vm.machine_type, status=vm.status, labels=vm.labels)


def seed_dcgm(prom: FakePrometheus, *, now: datetime, days: int = 14, vms: list[DemoVm] = GCE_ESTATE,
              nodes: list[DemoNode] = K8S_ESTATE, metric: str = "DCGM_FI_DEV_GPU_UTIL", seed: int = 7) -> None:
    """DCGM exporter series, one per GPU: GCE VMs labelled Hostname=<instance name>, cluster nodes
    labelled kubernetes_node=<node> (Hostname is then the exporter pod, as in a DaemonSet)."""
    rng = random.Random(seed)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    hours = days * 24
    for vm in vms:
        if vm.gpu is None or vm.machine_type not in IMPLICIT_GPUS:
            continue
        acc, count = IMPLICIT_GPUS[vm.machine_type]
        for gpu in range(count):
            prom.add_series(metric, {"gpu": str(gpu), "UUID": f"GPU-{vm.name}-{gpu}", "modelName": GPU_MODELS[acc],
                                     "Hostname": vm.name, "instance": f"{vm.name}:9400", "job": "dcgm-exporter-vms"},
                            _samples(vm.gpu, start, hours, rng))
    for node in nodes:
        for gpu in range(node.gpus):
            kind = "busy" if gpu < node.busy_gpus else "idle"
            prom.add_series(metric, {"gpu": str(gpu), "UUID": f"GPU-{node.name}-{gpu}", "modelName": node.model,
                                     "Hostname": f"dcgm-exporter-{node.name[-4:]}", "kubernetes_node": node.name,
                                     "instance": f"10.8.0.{len(node.name)}:9400", "job": "dcgm-exporter"},
                            _samples(kind, start, hours, rng))


OPS_AGENT_GPU = "agent.googleapis.com/gpu/utilization"


def seed_monitoring(mon: FakeMonitoring, gce: FakeGce, *, now: datetime, days: int = 14,
                    project: str = DEMO_PROJECT, vms: list[DemoVm] = GCE_ESTATE, seed: int = 11) -> None:
    """Cloud Monitoring history for the project's running VMs, keyed by instance id as the API is:
    the Ops Agent's GPU utilization (percent, one series per GPU) for VMs with `gpu` set, and the
    built-in CPU utilization (a 0-1 fraction) and network byte counts for every running VM. A VM's
    CPU and network follow its GPUs; one with `gpu=None` has busy CPU (a web server)."""
    rng = random.Random(seed)
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    hours = days * 24
    for vm in vms:
        if vm.status != "RUNNING":
            continue
        inst = gce.instance(project, vm.zone, vm.name)
        resource = {"instance_id": str(inst.id), "zone": vm.zone}
        if vm.gpu is not None and vm.machine_type in IMPLICIT_GPUS:
            acc, count = IMPLICIT_GPUS[vm.machine_type]
            for gpu in range(count):
                mon.add_series(project, OPS_AGENT_GPU, resource, _samples(vm.gpu, start, hours, rng),
                               metric_labels={"gpu_number": str(gpu), "model": GPU_MODELS[acc],
                                              "uuid": f"GPU-{inst.id}-{gpu}"})
        kind = vm.gpu or "busy"
        cpu = [(t, round(v / 100, 4)) for t, v in _samples(kind, start, hours, rng)]
        mon.add_series(project, "compute.googleapis.com/instance/cpu/utilization", resource, cpu,
                       metric_labels={"instance_name": vm.name})
        per_minute_bytes = 2_000 if kind == "idle" else 40_000_000  # idle: a few KB/min of ssh and agents
        for metric in ("received_bytes_count", "sent_bytes_count"):
            mon.add_series(project, f"compute.googleapis.com/instance/network/{metric}", resource,
                           [(t, per_minute_bytes * 30) for t, _ in _samples(kind, start, hours, rng)],
                           metric_labels={"instance_name": vm.name, "loadbalanced": "false"}, int64=True)


@contextmanager
def gcp_demo_estate(days: int = 14, now: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Start the three fakes, seed them, and yield the config sections that point Costwarden at them:
    the GCE project's utilization from Cloud Monitoring, the cluster's from Prometheus."""
    now = now or datetime.now(timezone.utc)
    gce, mon, prom = FakeGce(), FakeMonitoring(), FakePrometheus()
    gce.start()
    try:
        mon.start()
        prom.start()
        seed_gce(gce)
        seed_monitoring(mon, gce, now=now, days=days)
        seed_dcgm(prom, now=now, days=days, vms=[])  # the cluster's nodes only
        yield {
            "gce": gce, "monitoring_server": mon, "prometheus_server": prom,
            "gcp": {"projects": [DEMO_PROJECT], "endpoint_url": gce.endpoint, "utilization_source": "monitoring",
                    "monitoring": {"endpoint_url": mon.endpoint}},
            "prometheus": {"url": prom.endpoint, "node_label": "kubernetes_node", "cluster": DEMO_CLUSTER,
                           "region": "us-central1"},
            "pricing": {"overrides": dict(DEMO_GPU_PRICES)},
        }
    finally:
        prom.stop()
        mon.stop()
        gce.stop()
