"""The idle-gpu math on hand-made series: what must fire, what must not."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from costwarden.policies.detectors.base import DetectContext, Price, percentile, severity_for
from costwarden.policies.detectors.idle_gpu import IdleGpu, IdleGpuParams
from costwarden.state.domain import Observation, Resource, Series

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def resource(kind: str = "p4d.24xlarge", state: str = "running") -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.ec2", "i-0abc", kind=kind, state=state,
                    tags={"Name": "trainer"})


def series(name: str, values: list[float]) -> Series:
    return Series(name, [(i * 3600.0, v) for i, v in enumerate(values)])


def ctx(price: Decimal | None = Decimal("21.96")) -> DetectContext:
    return DetectContext("p", "run_1", NOW, lambda r: Price(price, "test table" if price else "unpriced"))


def detector(**params) -> IdleGpu:
    return IdleGpu(IdleGpuParams(**params))


def test_idle_gpu_fires_with_waste_from_hourly_price():
    obs = Observation(resource(), {"gpu_utilization": series("gpu_utilization", [0.5] * 168)})
    f = detector().detect(obs, ctx())
    assert f is not None
    assert f.monthly_waste_usd == Decimal("16030.80")  # 21.96 x 730
    assert f.severity == "critical" and f.confidence == "high"
    assert f.evidence["gpu_util_p95_pct"] == 0.5 and f.evidence["datapoints"] == 168
    assert f.evidence["price_source"] == "test table"


def test_busy_gpu_does_not_fire():
    obs = Observation(resource(), {"gpu_utilization": series("gpu_utilization", [40.0] * 168)})
    assert detector().detect(obs, ctx()) is None


def test_a_few_spikes_do_not_hide_a_week_of_idling_but_a_busy_day_does():
    spiky = [0.2] * 165 + [90.0] * 3  # health checks: under 5% of hours
    assert detector().detect(Observation(resource(), {"gpu_utilization": series("g", spiky)}), ctx()) is not None
    busy_day = [0.2] * 144 + [90.0] * 24  # one real working day in seven
    assert detector().detect(Observation(resource(), {"gpu_utilization": series("g", busy_day)}), ctx()) is None


def test_threshold_is_exclusive_and_configurable():
    at = Observation(resource(), {"gpu_utilization": series("g", [5.0] * 168)})
    assert detector().detect(at, ctx()) is None
    assert detector(gpu_util_threshold_pct=10).detect(at, ctx()) is not None


def test_too_few_datapoints_is_not_enough_evidence():
    obs = Observation(resource(), {"gpu_utilization": series("g", [0.0] * 100)})  # 100 < 0.8 x 168
    assert detector().detect(obs, ctx()) is None


def test_falls_back_to_cpu_and_network_when_the_gpu_metric_is_absent():
    quiet = {"cpu_utilization": series("cpu", [1.0] * 168), "network_in": series("ni", [1e5] * 168),
             "network_out": series("no", [1e5] * 168)}
    f = detector().detect(Observation(resource(), quiet), ctx())
    assert f is not None and f.confidence == "medium"
    assert f.evidence["network_mb_per_hour"] == pytest.approx(0.2)
    chatty = dict(quiet, network_in=series("ni", [5e8] * 168))  # 500 MB/h: something is being served
    assert detector().detect(Observation(resource(), chatty), ctx()) is None
    busy_cpu = dict(quiet, cpu_utilization=series("cpu", [60.0] * 168))
    assert detector().detect(Observation(resource(), busy_cpu), ctx()) is None


def test_unpriced_instance_is_reported_with_a_warning_not_a_silent_zero():
    c = ctx(price=None)
    f = detector().detect(Observation(resource("p6e.99xlarge"), {"gpu_utilization": series("g", [0] * 168)}), c)
    assert f is not None and f.monthly_waste_usd == 0
    assert f.evidence["hourly_price_usd"] is None and f.evidence["price_source"] == "unpriced"
    assert c.warnings and "p6e.99xlarge" in c.warnings[0]


def test_only_running_gpu_families_are_candidates():
    d = detector()
    assert d.wants(resource("g5.xlarge"))
    assert d.wants(resource("inf2.48xlarge"))
    assert not d.wants(resource("m5.xlarge"))
    assert not d.wants(resource("p4d.24xlarge", state="stopped"))
    assert not detector(families=["g5"]).wants(resource("p4d.24xlarge"))


def test_percentile_and_severity():
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == 10
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50) == 5
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError):
        percentile([], 95)
    assert [severity_for(x) for x in (5, 150, 1500, 15000)] == ["low", "medium", "high", "critical"]
