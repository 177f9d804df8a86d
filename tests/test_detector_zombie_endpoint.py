"""zombie-endpoint on hand-made observations: what must fire, what must not."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.zombie_endpoint import ZombieEndpoint, ZombieEndpointParams
from costwarden.state.domain import Observation, Resource, Series

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)
PRICES = {"ml.g5.xlarge": Decimal("1.408"), "ml.p4d.24xlarge": Decimal("37.688")}


def endpoint(variants: list[tuple[str, str, int]], *, age_days: float = 30, state: str = "InService") -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.sagemaker-endpoint", "chatbot-v1", kind=variants[0][1],
                    state=state, tags={"env": "dev"},
                    attrs={"creation_time": (NOW - timedelta(days=age_days)).isoformat(),
                           "endpoint_config_name": "chatbot-v1-config",
                           "variants": [{"name": n, "instance_type": t, "instance_count": c, "serverless": False}
                                        for n, t, c in variants],
                           "variant_names": [n for n, _, _ in variants]})


def ctx() -> DetectContext:
    return DetectContext("p", "run_1", NOW, lambda r: Price(PRICES.get(r.kind), "test table" if r.kind in PRICES
                                                            else "unpriced"))


def invocations(values: list[float]) -> dict[str, Series]:
    return {"invocations": Series("invocations", [(i * 3600.0, v) for i, v in enumerate(values)])}


def detector(**params) -> ZombieEndpoint:
    return ZombieEndpoint(ZombieEndpointParams(**params))


def test_endpoint_without_invocations_fires_priced_per_variant_and_instance():
    r = endpoint([("AllTraffic", "ml.g5.xlarge", 2), ("Canary", "ml.p4d.24xlarge", 1)])
    c = ctx()
    f = detector().detect(Observation(r, {}), c)  # no datapoints at all: CloudWatch's way of saying zero
    assert f is not None
    # (1.408 x 2 + 37.688) x 730 = 29,567.92
    assert f.monthly_waste_usd == Decimal("29567.92")
    assert f.evidence["invocations_total"] == 0 and f.evidence["instance_count"] == 3
    assert [v["instance_count"] for v in f.evidence["variants"]] == [2, 1]
    assert f.severity == "critical" and c.warnings == []
    assert "served 0 invocations" in f.evidence["summary"]
    # explicit zero datapoints are the same
    assert detector().detect(Observation(r, invocations([0.0] * 168)), ctx()) is not None


def test_invoked_endpoint_does_not_fire():
    r = endpoint([("AllTraffic", "ml.g5.xlarge", 1)])
    assert detector().detect(Observation(r, invocations([0.0] * 160 + [3.0])), ctx()) is None
    # unless the user tolerates a trickle
    assert detector(max_invocations=5).detect(Observation(r, invocations([0.0] * 160 + [3.0])), ctx()) is not None


def test_young_endpoint_is_not_judged():
    young = endpoint([("AllTraffic", "ml.g5.xlarge", 1)], age_days=2)
    assert detector(lookback_days=7).detect(Observation(young, {}), ctx()) is None
    assert detector(lookback_days=7, min_age_days=1).detect(Observation(young, {}), ctx()) is not None


def test_wants_only_billed_instance_endpoints_and_unpriced_types_warn():
    d = detector()
    assert d.wants(endpoint([("A", "ml.g5.xlarge", 1)]))
    assert not d.wants(endpoint([("A", "ml.g5.xlarge", 1)], state="Failed"))
    assert not d.wants(endpoint([("A", "ml.g5.xlarge", 0)]))
    c = ctx()
    f = d.detect(Observation(endpoint([("A", "ml.x9.mega", 1)]), {}), c)
    assert f is not None and f.evidence["price_source"] == "unpriced" and f.monthly_waste_usd == 0
    assert c.warnings and "ml.x9.mega" in c.warnings[0]


def test_missing_invocations_count_as_zero_only_for_an_endpoint_shown_to_run():
    """No Invocations datapoint is no traffic only for an endpoint older than the window that is
    InService or published CPU/GPU metrics; otherwise it is insufficient data, never a zombie."""
    variants = [("AllTraffic", "ml.g5.xlarge", 1)]
    busy_cpu = {"cpu_utilization": Series("cpu_utilization", [(i * 3600.0, 3.0) for i in range(168)])}
    for state, series, fires in [("InService", {}, True), ("Updating", {}, False), ("OutOfService", {}, False),
                                 ("Updating", busy_cpu, True),
                                 ("Updating", {"invocations": Series("invocations", [])}, False)]:
        c = ctx()
        f = detector().detect(Observation(endpoint(variants, state=state), series), c)
        assert (f is not None) == fires, (state, series)
        assert len(c.insufficient) == (0 if fires else 1)
        if not fires:
            x = c.insufficient[0]
            assert x["detector"] == "zombie-endpoint" and x["metric"] == "invocations" and x["coverage"] == 0
            assert state in x["reason"] and "no CPU or GPU metrics" in x["reason"]
    # a series of explicit zeros is data: judged whatever the state
    c = ctx()
    assert detector().detect(Observation(endpoint(variants, state="Updating"), invocations([0.0] * 168)), c) is not None
    assert c.insufficient == []


def test_a_young_endpoint_without_traffic_is_insufficient_data_not_silence():
    c = ctx()
    young = endpoint([("AllTraffic", "ml.g5.xlarge", 1)], age_days=2)
    assert detector(lookback_days=7).detect(Observation(young, {}), c) is None
    assert len(c.insufficient) == 1 and "too young" in c.insufficient[0]["reason"]
    c = ctx()  # a young endpoint with traffic is simply not a zombie
    assert detector(lookback_days=7).detect(Observation(young, invocations([5.0] * 48)), c) is None
    assert c.insufficient == []
