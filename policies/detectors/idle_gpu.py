"""idle-gpu: GPU instances whose GPUs sat idle for the whole lookback window.

Why the 95th percentile and not the maximum (Cloud Custodian's all-datapoints rule): one
health-check spike should not hide a week of idling, and one busy hour in a day should.
When the CloudWatch agent's GPU metric is absent, CPU and network stand in, with lower
confidence, since a host with neither CPU nor network activity is not feeding its GPUs.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams, percentile
from costwarden.policies.registry import detectors
from costwarden.state.domain import HOURS_PER_MONTH, Finding, MetricRequest, Observation, Resource

GPU_FAMILIES = (
    "p2", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6-b200",
    "g3", "g3s", "g4dn", "g4ad", "g5", "g5g", "g6", "g6e", "gr6",
    "trn1", "trn1n", "trn2", "inf1", "inf2", "dl1", "dl2q",
    # GCP machine families that come with GPUs (A2: A100, A3: H100, A4: B200, G2: L4, G4: RTX PRO 6000)
    "a2", "a3", "a4", "g2", "g4",
)


class IdleGpuParams(DetectorParams):
    lookback_days: int = Field(7, ge=1, le=63, description="Days of hourly metrics to judge on.")
    gpu_util_threshold_pct: float = Field(5.0, gt=0, le=100, description=(
        "Idle: the GPU utilization percentile is below this."))
    percentile: float = Field(95.0, gt=0, le=100, description=(
        "The percentile of hourly values compared with the thresholds."))
    cpu_util_threshold_pct: float = Field(10.0, gt=0, le=100, description=(
        "Fallback without GPU data: idle when the CPU percentile is below this..."))
    network_threshold_mb_per_hour: float = Field(50.0, ge=0, description=(
        "...and average network traffic (in + out) is below this many MB per hour (medium confidence)."))
    min_coverage: float = Field(0.8, gt=0, le=1, description="Share of lookback hours that must have datapoints.")
    families: list[str] = Field(default_factory=lambda: list(GPU_FAMILIES), description=(
        "Instance families considered (the type before the dot; GCE machine families)."))


@detectors.register("idle-gpu")
class IdleGpu(Detector):
    resource_types = ("aws.ec2", "gcp.compute", "k8s.gpu-node")
    permissions = ("cloudwatch:GetMetricData", "monitoring.timeSeries.list")  # the series it asks the collector for
    Params = IdleGpuParams
    params: IdleGpuParams

    @property
    def lookback_hours(self) -> int:
        return self.params.lookback_days * 24

    def wants(self, resource: Resource) -> bool:
        """Running GPU hosts only. EC2 by instance family (p4d.24xlarge -> p4d); GCE by machine family
        (a2-highgpu-1g -> a2) or any attached guestAccelerators (an n1 with T4s); a scraped node by
        having GPUs at all (nodes are discovered from their DCGM series)."""
        if resource.state != "running":
            return False
        if resource.provider == "gcp":
            return resource.kind.split("-", 1)[0] in self.params.families or bool(resource.attrs.get("gpu_count"))
        if resource.resource_type == "k8s.gpu-node":
            return bool(resource.attrs.get("gpu_count"))
        return resource.kind.split(".", 1)[0] in self.params.families

    def metrics(self) -> list[MetricRequest]:
        return [MetricRequest("gpu_utilization", "Average"), MetricRequest("cpu_utilization", "Average"),
                MetricRequest("network_in", "Sum"), MetricRequest("network_out", "Sum")]

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        needed = int(self.lookback_hours * p.min_coverage)
        gpu = obs.series.get("gpu_utilization")
        if gpu is not None and len(gpu.points) >= needed:
            values = gpu.values
            level = percentile(values, p.percentile)
            if level >= p.gpu_util_threshold_pct:
                return None
            evidence = {
                "signal": "gpu_utilization",
                f"gpu_util_p{p.percentile:g}_pct": round(level, 2),
                "percentile": p.percentile,
                "gpu_util_avg_pct": round(sum(values) / len(values), 2),
                "gpu_util_max_pct": round(max(values), 2),
                "threshold_pct": p.gpu_util_threshold_pct,
                "datapoints": len(values),
                "gpu_util_by_hour_utc_pct": hour_of_day_profile(gpu.points),
            }
            confidence = "high"
        else:
            fallback = self._fallback(obs, ctx, needed)
            if fallback is None:
                return None
            evidence, confidence = fallback, "medium"
        price = ctx.price_of(obs.resource)
        hourly = price.hourly_usd
        if hourly is None:
            ctx.warnings.append(f"no on-demand price for {obs.resource.kind} in {obs.resource.region}: "
                                f"{obs.resource.resource_id} is reported as unpriced")
        evidence.update({
            "instance_type": obs.resource.kind,
            "lookback_days": p.lookback_days,
            "hourly_price_usd": float(hourly) if hourly is not None else None,
            "price_source": price.source,
        })
        waste = (hourly or Decimal(0)) * HOURS_PER_MONTH
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=waste, confidence=confidence)

    def _fallback(self, obs: Observation, ctx: DetectContext, needed: int) -> dict | None:
        """CPU and network stand in for a missing GPU metric; each must itself be covered.

        A missing network series is not a quiet network: without it (or without enough CPU
        datapoints) the resource is recorded as insufficient data, never judged idle.
        """
        p = self.params
        cover = {m: self.coverage(obs, m) for m in ("gpu_utilization", "cpu_utilization")}
        cpu = obs.series.get("cpu_utilization")
        if cpu is None or len(cpu.points) < needed:
            return self.insufficient(obs, ctx, cover, required=p.min_coverage)
        cpu_level = percentile(cpu.values, p.percentile)
        if cpu_level >= p.cpu_util_threshold_pct:
            return None  # busy CPU: not idle, whatever the network did
        net = {m: obs.series.get(m) for m in ("network_in", "network_out")}
        if any(s is None or len(s.points) < needed for s in net.values()):
            cover.update({m: self.coverage(obs, m) for m in net})
            return self.insufficient(obs, ctx, cover, required=p.min_coverage)
        # per-hour mean of each direction, summed: each series is divided by its own datapoints
        net_mb_per_hour = sum(sum(s.values) / len(s.points) for s in net.values() if s is not None) / 1e6
        if net_mb_per_hour >= p.network_threshold_mb_per_hour:
            return None
        return {
            "signal": f"cpu_and_network (no GPU metric: {_GPU_AGENT.get(obs.resource.provider, 'GPU exporter')})",
            f"cpu_util_p{p.percentile:g}_pct": round(cpu_level, 2),
            "percentile": p.percentile,
            "cpu_threshold_pct": p.cpu_util_threshold_pct,
            "network_mb_per_hour": round(net_mb_per_hour, 3),
            "network_threshold_mb_per_hour": p.network_threshold_mb_per_hour,
            "datapoints": len(cpu.points),
        }


# what would have reported the GPU, named in the evidence so the reader knows what to install
_GPU_AGENT = {"aws": "install the CloudWatch agent's nvidia_gpu metrics",
              "gcp": "install the Ops Agent or scrape DCGM"}


def hour_of_day_profile(points: list[tuple[float, float]]) -> list[float | None]:
    """Mean of the series per UTC hour of day (24 values; None for an hour with no datapoint).

    Why: the series are dropped after detection, but a report's utilization heatmap (resource
    x hour of day) needs their shape. 24 rounded numbers per finding keep it cheap and bounded,
    and show whether an "idle" GPU is idle all day or only outside a nightly batch window.
    """
    sums, counts = [0.0] * 24, [0] * 24
    for ts, value in points:
        hour = int(ts // 3600) % 24
        sums[hour] += value
        counts[hour] += 1
    return [round(sums[h] / counts[h], 2) if counts[h] else None for h in range(24)]
