"""training-hardware-for-inference: the sizing math on hand-made specs and series, then dry-run
sweeps against moto (EC2 with the CloudWatch agent's GPU metrics, and SageMaker endpoints)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from pydantic import ValidationError

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.demo.estate import DEMO_AMI
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.training_hardware import (HardwareSpec, Priced, TrainingHardwareForInference,
                                                  TrainingHardwareParams, choose_alternative, family_of,
                                                  required_memory_gib, required_tflops)
from costwarden.policies.errors import PolicyError
from costwarden.policies.loader import load_policy_file
from costwarden.state.domain import Observation, Resource, Series
from tests.fakes.moto_server import mutating
from costwarden.tools.pricing import PriceBook

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)
A100X8 = HardwareSpec("p4d.24xlarge", "A100-40GB", 8, 40, 312, "test")


def spec(name: str, count: int, mem: float, tflops: float) -> HardwareSpec:
    return HardwareSpec(name, "X", count, mem, tflops, "test")


def priced(name: str, count: int, mem: float, tflops: float, hourly: str) -> Priced:
    return Priced(spec(name, count, mem, tflops), Decimal(hourly), "test table")


def ctx(prices: dict[str, Decimal | None] | None = None) -> DetectContext:
    """Prices from the shipped tables (as a sweep would), optionally overridden per type."""
    book = PriceBook()

    def price_of(r: Resource) -> Price:
        if prices is not None and r.kind in prices:
            p = prices[r.kind]
            return Price(p, "test table" if p is not None else "unpriced")
        return Price(*book.hourly(r.provider, r.region, r.kind))

    return DetectContext("p", "run_1", NOW, price_of)


def series(name: str, values: list[float]) -> Series:
    return Series(name, [(i * 3600.0, v) for i, v in enumerate(values)])


def ec2(kind: str = "p4d.24xlarge", state: str = "running") -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.ec2", "i-0abc", kind=kind, state=state)


def endpoint(variants: list[tuple[str, int]]) -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.sagemaker-endpoint", "chat", kind=variants[0][0],
                    state="InService", attrs={"variants": [{"name": f"v{i}", "instance_type": t, "instance_count": n}
                                                           for i, (t, n) in enumerate(variants)],
                                              "variant_names": [f"v{i}" for i in range(len(variants))]})


LOW = [15.0, 25.0] * 84  # average 20%, 95th percentile 25%: working, far from full


def detector(**params) -> TrainingHardwareForInference:
    return TrainingHardwareForInference(TrainingHardwareParams(**params))


# -- pure sizing math -------------------------------------------------------------------------------

def test_choose_alternative_takes_the_cheapest_that_holds_memory_and_compute():
    cands = [priced("small", 1, 24, 121, "0.80"), priced("mid", 4, 48, 362, "10.49"),
             priced("big", 8, 24, 121, "13.35"), priced("chips", 6, 32, 190, "6.49")]
    assert choose_alternative(A100X8, cands, min_memory_gib=20, min_tflops=100).spec.instance_type == "small"
    assert choose_alternative(A100X8, cands, min_memory_gib=150, min_tflops=700).spec.instance_type == "chips"
    assert choose_alternative(A100X8, cands, min_memory_gib=150, min_tflops=1200).spec.instance_type == "mid"
    assert choose_alternative(A100X8, cands, min_memory_gib=500, min_tflops=0) is None
    # count policy: no more devices than now / at least as many
    assert choose_alternative(spec("cur", 4, 40, 312), cands, min_memory_gib=150, min_tflops=700,
                              gpu_count="same_or_fewer").spec.instance_type == "mid"
    assert choose_alternative(spec("cur", 4, 40, 312), cands, min_memory_gib=20, min_tflops=0,
                              gpu_count="same_or_more").spec.instance_type == "chips"


def test_required_memory_and_compute_are_capped_at_what_the_host_has():
    assert required_memory_gib(A100X8, None, 20) == 320  # unknown peak: the whole current memory
    assert required_memory_gib(A100X8, 100, 20) == pytest.approx(120)
    assert required_memory_gib(A100X8, 300, 20) == 320
    assert required_tflops(A100X8, 25, 20) == pytest.approx(8 * 312 * 0.25 * 1.2)
    assert required_tflops(A100X8, 95, 20) == 8 * 312
    assert [family_of(k) for k in ("ml.p4d.24xlarge", "p5e.48xlarge", "a2-highgpu-1g")] == ["p4d", "p5e", "a2"]


# -- the detector on hand-made observations -----------------------------------------------------------

def test_low_util_p4d_with_memory_metric_fires_with_the_cheapest_fitting_alternative():
    obs = Observation(ec2(), {"gpu_utilization": series("g", LOW),
                              "gpu_memory_used_mib": series("m", [9000.0] * 167 + [10240.0])})
    f = detector().detect(obs, ctx())
    assert f is not None and f.confidence == "high"
    ev = f.evidence
    # peak 10 GiB on the fullest GPU x 8 GPUs = 80 GiB, +20% = 96 GiB; compute 2496 x 25% x 1.2 = 748.8 TFLOPS
    assert ev["gpu_memory_used_peak_gib"] == 80.0 and ev["required_gpu_memory_gib"] == 96.0
    assert ev["required_fp16_tflops"] == 748.8
    # g5.48xlarge (560 TFLOPS) is too slow; inf2.24xlarge (6 x 32 GiB, 1,140 TFLOPS, $6.4906) is the cheapest fit
    assert ev["alternative"]["instance_type"] == "inf2.24xlarge"
    assert f.monthly_waste_usd == Decimal("11292.66")  # (21.96 - 6.4906) x 730
    assert ev["gpu_util_avg_pct"] == 20.0 and ev["gpu_util_p95_pct"] == 25.0
    assert ev["current"]["hourly_price_usd"] == 21.96 and "EC2 On-Demand" in ev["current"]["price_source"]
    assert "Inf2" in ev["alternative"]["spec_source"] and "EC2 On-Demand" in ev["alternative"]["price_source"]
    assert "inf2.24xlarge" in ev["summary"] and ev["signal"] != "gpu_utilization"  # not the idle-gpu template


def test_policy_can_restrict_alternatives_and_without_memory_metric_capacity_decides():
    obs = Observation(ec2(), {"gpu_utilization": series("g", LOW)})
    f = detector(alternatives=["g6e", "g6"]).detect(obs, ctx())
    # no memory metric: the alternative must hold all 320 GiB -> g6e.48xlarge ($30.131) costs more: no finding
    assert f is None
    g = detector().detect(obs, ctx())
    assert g.confidence == "medium" and g.evidence["memory_basis"].startswith("current GPU memory capacity")
    assert g.evidence["alternative"]["instance_type"] == "inf2.48xlarge"  # 384 GiB, $12.9813
    obs_mem = Observation(ec2(), {"gpu_utilization": series("g", LOW),
                                  "gpu_memory_used_mib": series("m", [10240.0] * 168)})
    h = detector(alternatives=["g6e", "g6"]).detect(obs_mem, ctx())
    assert h.evidence["alternative"]["instance_type"] == "g6e.12xlarge"
    assert h.monthly_waste_usd == Decimal("8370.91")  # (21.96 - 10.493) x 730


def test_idle_busy_missing_metric_and_unpriced_do_not_fire():
    d = detector()
    idle = Observation(ec2(), {"gpu_utilization": series("g", [1.0] * 168)})
    assert d.detect(idle, ctx()) is None  # idle-gpu's finding
    busy = Observation(ec2(), {"gpu_utilization": series("g", [55.0] * 168)})
    assert d.detect(busy, ctx()) is None
    cpu_only = Observation(ec2(), {"cpu_utilization": series("c", [20.0] * 168)})
    assert d.detect(cpu_only, ctx()) is None  # no GPU metric: no guess
    sparse = Observation(ec2(), {"gpu_utilization": series("g", LOW[:100])})
    assert d.detect(sparse, ctx()) is None
    c = ctx({"p4d.24xlarge": None})
    assert d.detect(Observation(ec2(), {"gpu_utilization": series("g", LOW)}), c) is None
    assert c.warnings and "p4d.24xlarge" in c.warnings[0]
    # exactly at the idle threshold idle-gpu stays silent (it needs < 5%), so this detector speaks
    at = Observation(ec2(), {"gpu_utilization": series("g", [5.0] * 168)})
    assert d.detect(at, ctx()) is not None


def test_sagemaker_utilization_is_per_gpu_after_dividing_the_summed_percentages():
    # GPUUtilization on ml.p4d is 0-800%: 100% means 12.5% per GPU; GPUMemoryUtilization 300% = 3 x 40 GiB
    r = endpoint([("ml.p4d.24xlarge", 2)])
    obs = Observation(r, {"gpu_utilization": series("g", [100.0] * 168),
                          "gpu_memory_used_pct": series("m", [300.0] * 168)})
    f = detector().detect(obs, ctx())
    assert f is not None and f.evidence["gpu_util_avg_pct"] == 12.5
    assert f.evidence["gpu_memory_used_peak_gib"] == 120.0
    assert f.evidence["proposed_instance_type"] == "ml.g5.48xlarge"  # 192 GiB, 560 >= 374.4 TFLOPS
    assert f.monthly_waste_usd == Decimal("25298.88")  # (37.688 - 20.36) x 2 instances x 730
    busy = Observation(r, {"gpu_utilization": series("g", [400.0] * 168)})  # 50% per GPU
    assert detector().detect(busy, ctx()) is None


def test_wants_serving_training_class_hosts_only():
    d = detector()
    assert d.wants(ec2("p4d.24xlarge")) and d.wants(ec2("p5.48xlarge"))
    assert not d.wants(ec2("g5.xlarge")) and not d.wants(ec2("p4d.24xlarge", state="stopped"))
    assert d.wants(endpoint([("ml.p4d.24xlarge", 1)]))
    assert not d.wants(endpoint([("ml.p4d.24xlarge", 1), ("ml.g5.xlarge", 1)]))  # one merged series, two types
    assert d.wants(replace(ec2("a2-highgpu-8g"), provider="gcp", resource_type="gcp.compute"))
    assert not detector(families=["p5"]).wants(ec2("p4d.24xlarge"))


def test_bad_params_are_clear_errors(tmp_path: Path):
    with pytest.raises(ValidationError, match="'h100x' is neither a known instance type"):
        TrainingHardwareParams(alternatives=["h100x"])
    with pytest.raises(ValidationError, match="unknown accelerator 'B9000'"):
        TrainingHardwareParams(specs={"p6.48xlarge": {"accelerator": "B9000", "count": 8}})
    with pytest.raises(ValidationError, match="must be above idle_util_pct"):
        TrainingHardwareParams(max_avg_util_pct=5, idle_util_pct=5)
    # a policy can add hardware the data file does not know
    p = TrainingHardwareParams(specs={"p6.48xlarge": {"accelerator": "B200", "count": 8}},
                               accelerators={"B200": {"memory_gib": 180, "fp16_tflops": 2250}},
                               families=["p6"])
    assert TrainingHardwareForInference(p).wants(ec2("p6.48xlarge"))
    f = tmp_path / "bad.yml"
    f.write_text("policies:\n  - name: th\n    resource: aws.ec2\n    filters:\n"
                 "      - type: training-hardware-for-inference\n        alternatives: [h100x]\n")
    with pytest.raises(PolicyError) as exc:
        load_policy_file(f)
    assert "\n" not in str(exc.value) and "bad.yml" in str(exc.value) and "h100x" in str(exc.value)


# -- through real sweeps against moto -----------------------------------------------------------------

EC2_POLICY = """
policies:
  - name: training-hardware
    resource: {resource}
    mode: report
    filters:
      - type: training-hardware-for-inference
        lookback_days: 1
        min_coverage: 0.75
"""


def _put(cw, namespace: str, metric: str, dims: list[dict[str, str]], values: list[float], now: datetime) -> None:
    cw.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": metric, "Dimensions": dims, "Timestamp": now - timedelta(hours=len(values) - i),
         "Value": v} for i, v in enumerate(values)])


def _sweep(tmp_path: Path, state_dir: Path, resource: str):
    f = tmp_path / "th.yml"
    f.write_text(EC2_POLICY.format(resource=resource))
    return run_sweep(Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"])),
                     load_policy_file(f), dry_run=True)


def test_dry_run_sweep_finds_the_underused_p4d_only(aws, state_dir, tmp_path, no_costwarden_env):
    ec2c = boto3.client("ec2", region_name="us-east-1")
    cw = boto3.client("cloudwatch", region_name="us-east-1", config=Config(disable_request_compression=True))
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    low = [15.0, 25.0] * 12  # 24 hours of history only: moto's GetMetricData is O(queries x datapoints)
    estate = {"serving-on-p4d": ("p4d.24xlarge", low, 10240.0), "busy-p5": ("p5.48xlarge", [70.0] * 24, 60000.0),
              "idle-p4d": ("p4d.24xlarge", [0.5] * 24, 500.0), "no-agent-p4d": ("p4d.24xlarge", None, None),
              "small-g5": ("g5.xlarge", low, 8000.0)}
    ids = {}
    for name, (kind, gpu, mem) in estate.items():
        iid = ec2c.run_instances(ImageId=DEMO_AMI, InstanceType=kind, MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])["Instances"][0]["InstanceId"]
        ids[name] = iid
        dims = [{"Name": "InstanceId", "Value": iid}]
        _put(cw, "AWS/EC2", "CPUUtilization", dims, [20.0] * 24, now)
        if gpu is not None:
            _put(cw, "CWAgent", "nvidia_smi_utilization_gpu", dims, gpu, now)
            _put(cw, "CWAgent", "nvidia_smi_memory_used", dims, [mem] * 24, now)
    aws.clear_calls()
    result = _sweep(tmp_path, state_dir, "aws.ec2")

    assert result.errors == [] and result.inventoried == 5
    [f] = result.findings
    assert f.resource_id == ids["serving-on-p4d"] and f.detector == "training-hardware-for-inference"
    assert f.evidence["gpu_memory_used_peak_gib"] == 80.0  # nvidia_smi_memory_used reached us through GetMetricData
    assert f.evidence["alternative"]["instance_type"] == "inf2.24xlarge"
    assert f.monthly_waste_usd == Decimal("11292.66")
    assert "inf2.24xlarge" in f.rationale
    assert result.actions == []  # report only: the instance-type change is proposed, not planned
    assert mutating(aws.calls) == [] and aws.calls.count("GetMetricData") == 1


def test_dry_run_sweep_reads_sagemaker_gpu_memory_per_variant(aws, state_dir, tmp_path, monkeypatch,
                                                             no_costwarden_env):
    from moto.sagemaker.models import FakeEndpointConfig

    # moto 5.2 accepts only older ml. types; the server runs in this process, so a patch reaches it
    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", lambda self, t: None)
    sm = boto3.client("sagemaker", region_name="us-east-1")
    cw = boto3.client("cloudwatch", region_name="us-east-1", config=Config(disable_request_compression=True))
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    for name, util in (("chat-on-p4d", 100.0), ("busy-p4d", 500.0)):
        sm.create_model(ModelName=f"{name}-m", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                        PrimaryContainer={"Image": "img:1"})
        sm.create_endpoint_config(EndpointConfigName=f"{name}-c", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": f"{name}-m", "InitialInstanceCount": 2,
             "InstanceType": "ml.p4d.24xlarge"}])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]
        _put(cw, "/aws/sagemaker/Endpoints", "GPUUtilization", dims, [util] * 24, now)
        _put(cw, "/aws/sagemaker/Endpoints", "GPUMemoryUtilization", dims, [300.0] * 24, now)
    aws.clear_calls()
    result = _sweep(tmp_path, state_dir, "aws.sagemaker-endpoint")

    assert result.errors == []
    [f] = result.findings
    assert f.resource_id == "chat-on-p4d" and f.evidence["gpu_memory_used_peak_gib"] == 120.0
    assert f.evidence["proposed_instance_type"] == "ml.g5.48xlarge" and f.evidence["instance_count"] == 2
    assert "SageMaker" in f.evidence["alternative"]["price_source"]
    assert mutating(aws.calls) == []
