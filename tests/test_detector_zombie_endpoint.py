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
