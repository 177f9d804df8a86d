"""training-hardware-for-inference: A100/H100/H200 hosts that work, but at a fraction of their GPUs.

A p4d or p5 bought for training often ends up serving a model: its GPUs are busy enough not to be
idle (that is idle-gpu's finding, so anything idle-gpu would report is left to it) but far from
the load the hardware was priced for. An inference-class type (g5, g6, g6e, inf2 on AWS; G2 on
GCP) with enough GPU memory and compute for the observed peak costs a fraction of the price.

Why these rules:
- Low = average below `max_avg_util_pct` (35%) while the 95th percentile is at least the idle
  threshold (5%, idle-gpu's default): the two detectors never report the same hours twice.
- Memory decides what fits. With a GPU-memory metric (CloudWatch agent `nvidia_smi_memory_used`
  on EC2, `GPUMemoryUtilization` on SageMaker) the alternative must hold the peak plus headroom;
  without one it must hold the whole current GPU memory (never a guess that the model is small).
- Compute decides whether it keeps up: the alternative's dense FP16 throughput must cover the
  current throughput x the 95th-percentile utilization, plus headroom. GPU utilization is the share
  of time a kernel ran, which overstates the work done, so this errs towards bigger alternatives.
- No GPU utilization metric, no finding: CPU says nothing about how loaded an A100 is.

The saving is (current hourly price - alternative hourly price) x instances x 730, both prices
from the same price book the other detectors use. Specs (GPU count, memory, throughput) and the
default alternatives ship in policies/data/accelerators.yml; a policy can add or correct specs and
narrow the alternatives. The matching action is a change of instance type, which this detector
only proposes: the policy reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from costwarden.policies.datafiles import accelerator_specs
from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams, percentile
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.detectors.words import percentile_name
from costwarden.policies.registry import detectors
from costwarden.state.domain import HOURS_PER_MONTH, Finding, MetricRequest, Observation, Resource

TRAINING_FAMILIES = ("p4d", "p4de", "p5", "p5e", "p5en", "a2", "a3")


@dataclass(frozen=True)
class HardwareSpec:
    """One instance type's accelerators: `count` devices of `accelerator`."""

    instance_type: str
    accelerator: str
    count: int
    memory_gib: float  # per device
    fp16_tflops: float  # per device, dense
    source: str

    @property
    def total_memory_gib(self) -> float:
        return self.count * self.memory_gib

    @property
    def total_tflops(self) -> float:
        return self.count * self.fp16_tflops


@dataclass(frozen=True)
class Priced:
    spec: HardwareSpec
    hourly_usd: Decimal
    price_source: str


def build_specs(instances: dict[str, dict[str, Any]], accelerators: dict[str, dict[str, Any]]
                ) -> dict[str, HardwareSpec]:
    """Instance type -> HardwareSpec, joining each instance entry to its accelerator entry."""
    out: dict[str, HardwareSpec] = {}
    for itype, e in instances.items():
        acc = accelerators[e["accelerator"]]
        out[itype] = HardwareSpec(itype, e["accelerator"], int(e["count"]), float(acc["memory_gib"]),
                                  float(acc["fp16_tflops"]),
                                  f"{e.get('source', 'policy specs')}, as of {e.get('as_of', '-')}; "
                                  f"{e['accelerator']}: {acc.get('source', 'policy accelerators')}")
    return out


def family_of(kind: str) -> str:
    """'ml.p4d.24xlarge' -> 'p4d', 'p5.48xlarge' -> 'p5', 'a2-highgpu-1g' -> 'a2'."""
    base = kind.removeprefix("ml.")
    return base.split(".", 1)[0] if "." in base else base.split("-", 1)[0]


def required_memory_gib(current: HardwareSpec, peak_used_gib: float | None, headroom_pct: float) -> float:
    """GPU memory the alternative must hold: the observed peak plus headroom, never more than the
    current capacity; the whole current capacity when the peak is unknown."""
    if peak_used_gib is None:
        return current.total_memory_gib
    return min(current.total_memory_gib, peak_used_gib * (1 + headroom_pct / 100))


def required_tflops(current: HardwareSpec, util_pct: float, headroom_pct: float) -> float:
    """Dense FP16 throughput the alternative must offer: what the busy hours used, plus headroom."""
    return min(current.total_tflops, current.total_tflops * util_pct / 100 * (1 + headroom_pct / 100))


def choose_alternative(current: HardwareSpec, candidates: list[Priced], *, min_memory_gib: float,
                       min_tflops: float, gpu_count: str = "any") -> Priced | None:
    """The cheapest candidate with enough memory and compute under the count policy (`any`,
    `same_or_fewer`, `same_or_more` devices than now); ties go to the fewer devices, then the name."""
    fits = [c for c in candidates
            if c.spec.total_memory_gib >= min_memory_gib and c.spec.total_tflops >= min_tflops
            and (gpu_count == "any"
                 or (gpu_count == "same_or_fewer" and c.spec.count <= current.count)
                 or (gpu_count == "same_or_more" and c.spec.count >= current.count))]
    if not fits:
        return None
    return min(fits, key=lambda c: (c.hourly_usd, c.spec.count, c.spec.instance_type))


class InstanceSpecParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accelerator: str = Field(description="A key of the data file's or the policy's accelerators.")
    count: int = Field(gt=0, description="Accelerators per instance.")


class AcceleratorParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    memory_gib: float = Field(gt=0, description="Memory of one accelerator.")
    fp16_tflops: float = Field(gt=0, description="Dense FP16 throughput of one accelerator.")


class TrainingHardwareParams(DetectorParams):
    lookback_days: int = Field(7, ge=1, le=63, description="Days of hourly metrics to judge on.")
    idle_util_pct: float = Field(5.0, gt=0, le=100, description="Below this 95th percentile the GPUs are idle: "
                                                                "idle-gpu's finding, not this one.")
    max_avg_util_pct: float = Field(35.0, gt=0, le=100, description="Low use: average GPU utilization below this.")
    percentile: float = Field(95.0, gt=0, le=100, description=(
        "The busy level compared with idle_util_pct and sized for."))
    min_coverage: float = Field(0.8, gt=0, le=1, description="Share of lookback hours that must have datapoints.")
    headroom_pct: float = Field(20.0, ge=0, le=200, description="Added to the memory and compute the target must hold.")
    memory_basis: Literal["peak_used", "capacity"] = Field("peak_used", description=(
        "peak_used: the peak GPU memory reported (the whole capacity when none is); capacity: always the whole."))
    compute_check: bool = Field(True, description="The target's FP16 throughput must cover the busy level's too.")
    gpu_count: Literal["any", "same_or_fewer", "same_or_more"] = Field("any", description=(
        "The target's GPU count against the current one."))
    families: list[str] = Field(default_factory=lambda: list(TRAINING_FAMILIES), description="Families judged.")
    alternatives: list[str] | None = Field(None, description="Instance types or families allowed as targets; "
                                                             "default: the data file's list for the provider.")
    specs: dict[str, InstanceSpecParam] = Field(default_factory=dict, description=(
        "Instance types to add or correct, by type."))
    accelerators: dict[str, AcceleratorParam] = Field(default_factory=dict, description="Accelerators to add, by name.")

    @model_validator(mode="after")
    def _consistent(self) -> TrainingHardwareParams:
        if self.max_avg_util_pct <= self.idle_util_pct:
            raise ValueError(f"max_avg_util_pct ({self.max_avg_util_pct:g}) must be above idle_util_pct "
                             f"({self.idle_util_pct:g})")
        accels = set(accelerator_specs()["accelerators"]) | set(self.accelerators)
        for itype, s in self.specs.items():
            if s.accelerator not in accels:
                raise ValueError(f"specs.{itype}.accelerator: unknown accelerator {s.accelerator!r}; known: "
                                 f"{', '.join(sorted(accels))} (or add it under accelerators)")
        known = set(accelerator_specs()["instances"]) | set(self.specs)
        families = {family_of(k) for k in known}
        for alt in self.alternatives or []:
            if alt.removeprefix("ml.") not in known and alt not in families:
                raise ValueError(f"alternatives: {alt!r} is neither a known instance type nor a family of one "
                                 "(add its spec under specs)")
        return self


@detectors.register("training-hardware-for-inference")
class TrainingHardwareForInference(Detector):
    resource_types = ("aws.ec2", "aws.sagemaker-endpoint", "gcp.compute")
    permissions = ("cloudwatch:GetMetricData", "monitoring.timeSeries.list")  # the series it asks the collector for
    Params = TrainingHardwareParams
    params: TrainingHardwareParams

    def __init__(self, params: TrainingHardwareParams) -> None:
        super().__init__(params)
        data = accelerator_specs()
        accels = dict(data["accelerators"])
        accels.update({k: v.model_dump() for k, v in params.accelerators.items()})
        instances = dict(data["instances"])
        instances.update({k: v.model_dump() for k, v in params.specs.items()})
        self.specs = build_specs(instances, accels)
        self.default_alternatives: dict[str, list[str]] = data["alternatives"]

    @property
    def lookback_hours(self) -> int:
        return self.params.lookback_days * 24

    def wants(self, resource: Resource) -> bool:
        """Serving training-class hosts with a known spec: EC2/GCE by type, SageMaker by its variants'."""
        kinds = _kinds(resource)
        if resource.state not in ("running", "InService") or len(kinds) != 1:
            return False
        kind = next(iter(kinds))
        return family_of(kind) in self.params.families and kind.removeprefix("ml.") in self.specs

    def metrics(self) -> list[MetricRequest]:
        return [MetricRequest("gpu_utilization", "Average"), MetricRequest("gpu_memory_used_mib", "Maximum"),
                MetricRequest("gpu_memory_used_pct", "Maximum")]

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        r = obs.resource
        kinds = _kinds(r)
        if len(kinds) != 1:  # variants of different types share one merged series: cannot tell them apart
            return None
        kind = next(iter(kinds))
        current = self.specs.get(kind.removeprefix("ml."))
        gpu = obs.series.get("gpu_utilization")
        if current is None:
            return None
        if gpu is None or len(gpu.points) < int(self.lookback_hours * p.min_coverage):  # no GPU metric: no guess
            return self.insufficient(obs, ctx, {"gpu_utilization": self.coverage(obs, "gpu_utilization")},
                                     required=p.min_coverage)
        per_sum = r.resource_type == "aws.sagemaker-endpoint"  # SageMaker sums per-GPU percentages
        util = [v / current.count if per_sum else v for v in gpu.values]
        avg, level = sum(util) / len(util), percentile(util, p.percentile)
        if level < p.idle_util_pct or avg >= p.max_avg_util_pct:
            return None
        peak_gib = self._peak_memory_gib(obs, current) if p.memory_basis == "peak_used" else None
        need_mem = required_memory_gib(current, peak_gib, p.headroom_pct)
        need_tflops = required_tflops(current, level, p.headroom_pct) if p.compute_check else 0.0

        price = ctx.price_of(r if r.kind == kind else replace(r, kind=kind))
        if price.hourly_usd is None:
            ctx.warnings.append(f"no on-demand price for {kind} in {r.region}: {r.resource_id} cannot be "
                                "compared with cheaper hardware")
            return None
        candidates, unpriced = self._priced_candidates(r, kind, ctx)
        best = choose_alternative(current, candidates, min_memory_gib=need_mem, min_tflops=need_tflops,
                                  gpu_count=p.gpu_count)
        if best is None or best.hourly_usd >= price.hourly_usd:
            return None
        instances = _instance_count(r)
        saving = (price.hourly_usd - best.hourly_usd) * instances * HOURS_PER_MONTH
        target = ("ml." if kind.startswith("ml.") else "") + best.spec.instance_type
        evidence = {
            "signal": "gpu_utilization_low",
            "instance_type": kind,
            "instance_count": instances,
            "lookback_days": p.lookback_days,
            "datapoints": len(util),
            "gpu_util_avg_pct": round(avg, 2),
            f"gpu_util_p{p.percentile:g}_pct": round(level, 2),
            "percentile": p.percentile,
            "gpu_util_max_pct": round(max(util), 2),
            "idle_util_pct": p.idle_util_pct,
            "max_avg_util_pct": p.max_avg_util_pct,
            "gpu_memory_used_peak_gib": round(peak_gib, 1) if peak_gib is not None else None,
            "memory_basis": ("peak GPU memory used + headroom" if peak_gib is not None else
                             "current GPU memory capacity (no GPU memory metric)"
                             if p.memory_basis == "peak_used" else "current GPU memory capacity"),
            "required_gpu_memory_gib": round(need_mem, 1),
            "required_fp16_tflops": round(need_tflops, 1),
            "headroom_pct": p.headroom_pct,
            "current": _describe(current, kind, price.hourly_usd, price.source),
            "alternative": _describe(best.spec, target, best.hourly_usd, best.price_source),
            "alternatives_considered": len(candidates),
            "alternatives_unpriced": unpriced,
            "hourly_price_usd": float(price.hourly_usd),
            "price_source": price.source,
            "proposed_instance_type": target,
            "alternative_type": target,  # what a `change-instance-type` action takes via from_evidence
            "saving_formula": "(current hourly - alternative hourly) x instances x 730 h",
            "summary": (f"{kind} GPUs averaged {avg:.1f}% ({percentile_name(p.percentile)} {level:.1f}%) over "
                        f"{day_words(p.lookback_days)}; {target} ({best.spec.count}x {best.spec.accelerator}) holds "
                        f"{need_mem:.0f} GiB of GPU memory for ${best.hourly_usd:.4f}/h instead of "
                        f"${price.hourly_usd:.4f}/h: ${saving:,.2f}/month for {instances} instance(s)."),
        }
        confidence = "high" if peak_gib is not None or p.memory_basis == "capacity" else "medium"
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=saving, confidence=confidence)

    def _peak_memory_gib(self, obs: Observation, current: HardwareSpec) -> float | None:
        """Peak GPU memory held across the instance, in GiB; None when no metric reports it."""
        mib = obs.series.get("gpu_memory_used_mib")
        if mib is not None and mib.points:  # the fullest single GPU; assume every GPU could be that full
            return max(mib.values) / 1024 * current.count
        pct = obs.series.get("gpu_memory_used_pct")
        if pct is not None and pct.points:  # per-GPU percentages summed over the instance's GPUs
            return max(pct.values) / 100 * current.memory_gib
        return None

    def _priced_candidates(self, r: Resource, kind: str, ctx: DetectContext) -> tuple[list[Priced], list[str]]:
        provider_list = self.default_alternatives.get(r.provider, [])
        wanted = None if self.params.alternatives is None else [w.removeprefix("ml.") for w in self.params.alternatives]
        names = [t for t in provider_list if wanted is None or t in wanted or family_of(t) in wanted]
        if wanted is not None:  # a policy may name types beyond the default list (with specs of its own)
            names += [w for w in wanted if w in self.specs and w not in names]
        prefix = "ml." if kind.startswith("ml.") else ""
        priced, unpriced = [], []
        for t in names:
            spec = self.specs.get(t)
            if spec is None:
                continue
            price = ctx.price_of(replace(r, kind=prefix + t))
            if price.hourly_usd is None:
                unpriced.append(prefix + t)
            else:
                priced.append(Priced(spec, price.hourly_usd, price.source))
        return priced, unpriced


def _kinds(r: Resource) -> set[str]:
    """The instance types that bill for a resource: its own kind, or its SageMaker variants'."""
    if r.resource_type == "aws.sagemaker-endpoint":
        return {v["instance_type"] for v in r.attrs.get("variants", [])
                if v.get("instance_type") and v.get("instance_count", 0) > 0}
    return {r.kind} if r.kind else set()


def _instance_count(r: Resource) -> int:
    if r.resource_type == "aws.sagemaker-endpoint":
        return sum(int(v.get("instance_count", 0)) for v in r.attrs.get("variants", []))
    return 1


def _describe(spec: HardwareSpec, kind: str, hourly: Decimal, source: str) -> dict[str, Any]:
    return {"instance_type": kind, "accelerator": spec.accelerator, "count": spec.count,
            "gpu_memory_gib": spec.total_memory_gib, "fp16_tflops": spec.total_tflops,
            "hourly_price_usd": float(hourly), "price_source": source, "spec_source": spec.source}

