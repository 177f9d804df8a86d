"""Rationales say what the detector actually used: its percentile and its lookback, in words."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from costwarden.agent.engine.nodes.explain import rationale
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.idle_gpu import IdleGpu, IdleGpuParams
from costwarden.policies.detectors.words import days, ordinal, percentile_name
from costwarden.state.domain import Observation, Resource, Series

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def idle(hours: int, price: Decimal | None = Decimal("21.96"), **params) -> str:
    r = Resource("aws", "1", "us-east-1", "aws.ec2", "i-1", kind="p4d.24xlarge", state="running")
    s = Series("g", [(i * 3600.0, 0.5 + (i % 3)) for i in range(hours)])
    c = DetectContext("p", "run", NOW, lambda _r: Price(price, "t" if price else "unpriced"))
    f = IdleGpu(IdleGpuParams(**params)).detect(Observation(r, {"gpu_utilization": s}), c)
    assert f is not None
    return rationale(f)


@pytest.mark.parametrize(("p", "words"), [(50, "median"), (95, "95th percentile"), (100, "maximum"),
                                          (99, "99th percentile"), (92.5, "92.5th percentile"),
                                          (1, "1st percentile"), (22, "22nd percentile"), (13, "13th percentile")])
def test_percentile_names(p, words):
    assert percentile_name(p) == words


def test_days_and_ordinals():
    assert (days(1), days(7), days(0), days(1.5)) == ("1 day", "7 days", "0 days", "1.5 days")
    assert (ordinal(3), ordinal(11), ordinal(101), ordinal(112)) == ("3rd", "11th", "101st", "112th")


def test_rationale_follows_percentile_and_lookback():
    text = idle(24, percentile=100, lookback_days=1)
    assert "(maximum)" in text and "over 1 day " in text
    assert "95th" not in text and "1 days" not in text
    med = idle(168, percentile=50)
    assert "(median, max 2.5%)" in med and "over 7 days" in med


def test_fallback_rationale_names_its_percentile_and_says_the_network_was_measured():
    r = Resource("aws", "1", "us-east-1", "aws.ec2", "i-1", kind="p4d.24xlarge", state="running")
    quiet = {m: Series(m, [(i * 3600.0, 1.0) for i in range(48)])
             for m in ("cpu_utilization", "network_in", "network_out")}
    c = DetectContext("p", "run", NOW, lambda _r: Price(Decimal("1"), "t"))
    f = IdleGpu(IdleGpuParams(percentile=99, lookback_days=2)).detect(Observation(r, quiet), c)
    text = rationale(f)
    assert "CPU at 1.0% (99th percentile)" in text and "MB/h of network (measured) over 2 days" in text


def test_unpriced_rationale_never_claims_zero_dollars():
    text = idle(168, price=None)
    assert "$0.00" not in text and "unpriced" in text
