"""The c7n vocabulary: value filter ops and value types, tag:Key shorthand, and/or/not algebra,
AND across a policy's filters, two detectors on one resource, max-resources, and load-time errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.policies.detectors.base import DetectContext, Detector, Price
from costwarden.policies.errors import PolicyError
from costwarden.policies.evaluate import PolicyFilters, merge
from costwarden.policies.guard import GuardContext, decide
from costwarden.policies.loader import load_policy_data, load_policy_file
from costwarden.state.domain import REPORT, Observation, PlannedAction, Resource

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def ec2(tags=None, state="running", kind="g5.xlarge", **attrs) -> Resource:
    return Resource("aws", "111111111111", "us-east-1", "aws.ec2", "i-0abc", kind=kind, state=state,
                    tags=dict(tags or {}), attrs=attrs)


def policy(filters, resource="aws.ec2", **extra):
    data = {"policies": [{"name": "p", "resource": resource, "filters": filters, **extra}]}
    return load_policy_data(data, "test.yml")[0]


def passes(filters, r: Resource) -> bool:
    return policy(filters).filters.passes(r, NOW)


@pytest.mark.parametrize("spec,resource,expected", [
    ({"key": "state", "value": "running"}, ec2(), True),
    ({"key": "state", "op": "eq", "value": "stopped"}, ec2(), False),
    ({"key": "state", "op": "ne", "value": "stopped"}, ec2(), True),
    ({"key": "cpus", "op": "gt", "value": 4}, ec2(cpus=8), True),
    ({"key": "cpus", "op": "gt", "value": 8}, ec2(cpus=8), False),
    ({"key": "cpus", "op": "ge", "value": 8}, ec2(cpus=8), True),
    ({"key": "cpus", "op": "lt", "value": 8}, ec2(cpus=8), False),
    ({"key": "cpus", "op": "le", "value": 8}, ec2(cpus=8), True),
    ({"key": "kind", "op": "in", "value": ["g5.xlarge", "p5.48xlarge"]}, ec2(), True),
    ({"key": "kind", "op": "not-in", "value": ["g5.xlarge"]}, ec2(), False),
    ({"key": "kind", "op": "regex", "value": "^G5\\."}, ec2(), True),  # c7n's regex ignores case
    ({"key": "kind", "op": "regex-case", "value": "^G5\\."}, ec2(), False),
    ({"key": "cpus", "op": "regex", "value": "8"}, ec2(cpus=8), False),  # not a string: no match
    ({"key": "cpus", "op": "gt", "value": 4}, ec2(), False),  # missing: None > 4 is no match
    ({"key": "tags.env", "op": "ne", "value": "prod"}, ec2(), True),  # missing != prod, as in c7n
    ({"key": "tag:env", "op": "in", "value": ["dev"]}, ec2(), False),  # missing in [..]: () in list
    ({"key": "tag:env", "op": "not-in", "value": ["dev"]}, ec2(), True),
    ({"key": "tag:env", "op": "absent"}, ec2(), True),
    ({"key": "tag:env", "op": "present"}, ec2(), False),
    ({"key": "tag:env", "op": "greater-than", "value": "a"}, ec2({"env": "b"}), True),  # c7n alias
    ({"key": "launch_time", "value_type": "age", "op": "gt", "value": 30},
     ec2(launch_time=(NOW - timedelta(days=31)).isoformat()), True),
    ({"key": "launch_time", "value_type": "age", "op": "gt", "value": 30},
     ec2(launch_time=(NOW - timedelta(days=29)).isoformat()), False),
    ({"key": "launch_time", "value_type": "age", "op": "gt", "value": 30}, ec2(launch_time=""), False),
    ({"key": "attachments", "value_type": "size", "op": "eq", "value": 2}, ec2(attachments=["a", "b"]), True),
    ({"key": "attachments", "value_type": "size", "op": "eq", "value": 0}, ec2(), True),  # no len: 0
    ({"key": "tag:gpus", "value_type": "integer", "op": "ge", "value": 4}, ec2({"gpus": " 8 "}), True),
    ({"key": "tag:gpus", "value_type": "integer", "op": "ge", "value": 4}, ec2({"gpus": "eight"}), False),
    ({"key": "tag:env", "value_type": "normalize", "value": "prod"}, ec2({"env": " PROD "}), True),
    ({"key": "Tags[?Key=='env'].Value | [0]", "value": "dev"}, ec2({"env": "dev"}), True),
], ids=lambda x: repr(x)[:60] if isinstance(x, dict) else None)
def test_each_op_and_value_type(spec, resource, expected):
    assert passes([{"type": "value", **spec}], resource) is expected


def test_tag_shorthand_and_absent_versus_empty():
    """`tag:K: v` is a value filter; a tag set to "" is present and empty, a missing tag is absent and empty."""
    empty, missing, set_ = ec2({"owner": ""}), ec2(), ec2({"owner": "ana"})
    assert [passes([{"tag:owner": "absent"}], r) for r in (empty, missing, set_)] == [False, True, False]
    assert [passes([{"tag:owner": "present"}], r) for r in (empty, missing, set_)] == [True, False, True]
    assert [passes([{"tag:owner": "empty"}], r) for r in (empty, missing, set_)] == [True, True, False]
    assert [passes([{"tag:owner": "ana"}], r) for r in (empty, missing, set_)] == [False, False, True]


ATOMS = [{"tag:a": "1"}, {"tag:b": "present"}, {"type": "value", "key": "cpus", "op": "gt", "value": 4},
         {"type": "value", "key": "state", "op": "in", "value": ["running", "pending"]}]


def atom_truth(i: int, r: Resource) -> bool:
    return passes([ATOMS[i]], r)


exprs = st.recursive(st.integers(0, len(ATOMS) - 1),
                     lambda inner: st.tuples(st.sampled_from(["and", "or", "not"]), st.lists(inner, min_size=1, max_size=3)),
                     max_leaves=6)
resources = st.builds(lambda a, b, cpus, state: ec2({**({"a": a} if a else {}), **({"b": b} if b is not None else {})},
                                                   state=state, **({"cpus": cpus} if cpus is not None else {})),
                      st.sampled_from([None, "1", "2"]), st.sampled_from([None, "", "x"]),
                      st.one_of(st.none(), st.integers(0, 9)), st.sampled_from(["running", "pending", "stopped"]))


def to_yaml(e):
    return ATOMS[e] if isinstance(e, int) else {e[0]: [to_yaml(c) for c in e[1]]}


def truth(e, r: Resource) -> bool:
    if isinstance(e, int):
        return atom_truth(e, r)
    values = [truth(c, r) for c in e[1]]
    return {"and": all(values), "or": any(values), "not": not all(values)}[e[0]]


@settings(max_examples=60, deadline=None)
@given(exprs, exprs, resources)
def test_blocks_obey_boolean_algebra(e1, e2, r):
    """and/or/not agree with Python's booleans over each leaf's own verdict, and the usual laws hold:
    a policy's list is AND; De Morgan; not-not; or distributes over and."""
    y1, y2 = to_yaml(e1), to_yaml(e2)
    t1, t2 = truth(e1, r), truth(e2, r)
    assert passes([y1], r) is t1
    assert passes([y1, y2], r) is (t1 and t2)  # filters in one policy combine as AND
    assert passes([{"or": [y1, y2]}], r) is (t1 or t2)
    assert passes([{"not": [{"or": [y1, y2]}]}], r) is passes([{"not": [y1]}, {"not": [y2]}], r)  # De Morgan
    assert passes([{"not": [{"not": [y1]}]}], r) is t1
    assert passes([{"or": [y1, {"and": [y2, y1]}]}], r) is t1  # absorption


class Flag(Detector):
    """A detector that flags every resource with a fixed waste (the real ones are tested elsewhere)."""

    name = "flag"
    resource_types = ("aws.ec2",)

    def __init__(self, name: str, waste: str, flags: bool = True) -> None:
        super().__init__(self.Params())
        self.name, self.waste, self.flags = name, Decimal(waste), flags

    def detect(self, obs, ctx):
        return self.finding(obs, ctx, evidence={"by": self.name}, monthly_waste=self.waste) if self.flags else None


def ctx() -> DetectContext:
    return DetectContext(policy="p", run_id="r", now=NOW, price_of=lambda r: Price(None, "none"))


def test_two_detectors_must_both_flag_and_their_waste_is_not_added():
    obs = Observation(resource=ec2())
    both = PolicyFilters(detectors=[Flag("a", "100"), Flag("b", "250")]).evaluate(obs, ctx())
    assert len(both) == 1
    f = both[0]
    assert f.detector == "a" and f.monthly_waste_usd == Decimal("250.00")  # the larger, not 350
    assert f.evidence["by"] == "a" and f.evidence["also_flagged_by"]["b"]["evidence"] == {"by": "b"}
    assert PolicyFilters(detectors=[Flag("a", "100"), Flag("b", "250", flags=False)]).evaluate(obs, ctx()) == []
    # an `or` of detectors: each flags on its own, one finding each
    each = PolicyFilters(any_of=[Flag("a", "100"), Flag("b", "250")]).evaluate(obs, ctx())
    assert sorted(f.detector for f in each) == ["a", "b"]


def test_plain_filters_gate_detectors_and_a_policy_without_detectors_finds_matches():
    obs = Observation(resource=ec2({"env": "dev"}))
    lp = policy([{"tag:env": "dev"}])
    [f] = lp.filters.evaluate(obs, ctx())
    assert f.detector == "filters" and f.monthly_waste_usd == 0 and f.evidence["monthly_waste_estimated"] is False
    assert policy([{"tag:env": "prod"}]).filters.evaluate(obs, ctx()) == []
    lp = policy([{"tag:env": "prod"}, {"type": "idle-gpu"}])
    assert not lp.filters.wants(obs.resource, NOW)  # no metrics fetched for what the plain filters drop


def test_merge_of_one_is_itself():
    obs = Observation(resource=ec2())
    f = Flag("a", "5").detect(obs, ctx())
    assert merge([f]) is f


def test_max_resources_guard_acts_on_none():
    lp = policy([{"tag:env": "dev"}], mode="auto", actions=["stop"], **{"max-resources": 2})
    assert lp.policy.max_resources == 2
    a = PlannedAction(id="a", finding_id="f", policy="p", action="stop", tool="aws.ec2.stop_instance", args={},
                      projected_monthly_savings_usd=Decimal(0), resource_key="k")
    decision, reason = decide(lp.policy, a, {}, GuardContext(now=NOW, flagged=3))
    assert decision == REPORT and "max-resources=2" in reason and "acts on none" in reason
    assert decide(lp.policy, a, {}, GuardContext(now=NOW, flagged=2))[0] != REPORT
    # unset, the policy's hash is the one it had before the field existed
    assert "max_resources" not in str(policy([{"tag:env": "dev"}]).policy.model_dump(exclude_none=True))


@pytest.mark.parametrize("filt,words", [
    ({"type": "value", "key": "state", "op": "like", "value": "x"}, "unknown op 'like'"),
    ({"type": "value", "key": "state", "op": "regex", "value": "(["}, "bad regex '(['"),
    ({"type": "value", "key": "state", "value_type": "weekday", "value": 1}, "unknown value_type 'weekday'"),
    ({"type": "value", "key": "a..b", "value": 1}, "bad JMESPath key"),
    ({"or": [{"tag:a": "1"}, {"type": "idle-gpu"}]}, "mixes detectors with the plain filter"),
    ({"not": [{"type": "idle-gpu"}]}, "detector 'idle-gpu' inside a `not` block"),
])
def test_bad_filters_are_one_line_errors_naming_file_and_field(tmp_path, filt, words):
    import yaml

    f = tmp_path / "bad.yml"
    f.write_text(yaml.safe_dump({"policies": [{"name": "p", "resource": "aws.ec2",
                                                "filters": [{"tag:env": "dev"}, filt]}]}))
    with pytest.raises(PolicyError) as exc:
        load_policy_file(f)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(str(f)) and words in msg and "policies.0.filters.1" in msg


def test_documented_attributes_are_what_the_collectors_put_on_resources():
    """RESOURCE_ATTRIBUTES (the reference page's list) against each collector's own conversion."""
    from costwarden.policies.resources import RESOURCE_ATTRIBUTES
    from costwarden.tools.aws import ebs, ec2, eip, sagemaker

    made = {
        "aws.ec2": ec2.to_resource({"InstanceId": "i-1", "State": {"Name": "stopped"}}, "1", "r"),
        "aws.ebs-volume": ebs.volume_resource({"VolumeId": "vol-1"}, "1", "r"),
        "aws.elastic-ip": eip.to_resource({"AllocationId": "eipalloc-1"}, "1", "r"),
        "aws.sagemaker-endpoint": sagemaker.to_resource({"EndpointName": "e"}, {}, {}, "1", "r"),
    }
    for rtype, resource in made.items():
        assert tuple(resource.attrs) == RESOURCE_ATTRIBUTES[rtype], rtype
