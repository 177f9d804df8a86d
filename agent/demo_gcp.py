"""The demo's GCP project and Prometheus-scraped Kubernetes cluster.

A fake Compute Engine API and a fake Prometheus run in this process on free loopback ports; the
real google-cloud-compute client and our Prometheus client talk to them. The GCE instances run
NVIDIA's DCGM exporter, so their GPU series come from the same Prometheus as the cluster's nodes
(matched on the `Hostname` label = instance name); the cluster's nodes are matched on
`kubernetes_node`. Instance names, labels and prices are realistic; no real account is touched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from agent.demo import _profile
from agent.demo_fakes.gce import IMPLICIT_GPUS, FakeGce
from agent.demo_fakes.prometheus import FakePrometheus

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
    return [(t0 + i * step, round(_profile(kind, int((t0 + i * step) // 3600), rng), 2))
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


@contextmanager
def gcp_demo_estate(days: int = 14, now: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Start both fakes, seed them, and yield the config sections that point Costwarden at them."""
    now = now or datetime.now(timezone.utc)
    gce, prom = FakeGce(), FakePrometheus()
    gce.start()
    prom.start()
    try:
        seed_gce(gce)
        seed_dcgm(prom, now=now, days=days)
        yield {
            "gce": gce, "prometheus_server": prom,
            "gcp": {"projects": [DEMO_PROJECT], "endpoint_url": gce.endpoint},
            "prometheus": {"url": prom.endpoint, "node_label": "kubernetes_node", "cluster": DEMO_CLUSTER,
                           "region": "us-central1", "gcp_instance_label": "Hostname"},
            "pricing": {"overrides": dict(DEMO_GPU_PRICES)},
        }
    finally:
        prom.stop()
        gce.stop()
