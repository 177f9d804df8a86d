"""marked-for-op: a mark fires on its due date and not before, for its own op only, on a resource the op
can change; a malformed mark is a warning, never a finding."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.marked_for_op import MarkedForOp, MarkedForOpParams
from costwarden.state.domain import Observation, Resource

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)


def _ctx() -> DetectContext:
    return DetectContext(policy="p", run_id="r", now=NOW, price_of=lambda r: Price(Decimal("2.0"), "test"))


def _ec2(tags: dict[str, str], state: str = "running") -> Resource:
    return Resource("aws", "1", "us-east-1", "aws.ec2", "i-1", kind="g5.12xlarge", state=state, tags=tags)


def _detect(resource: Resource, **params):
    d = MarkedForOp(MarkedForOpParams(**params))
    ctx = _ctx()
    return (d.detect(Observation(resource), ctx) if d.wants(resource) else None), ctx


def test_a_due_stop_mark_fires_with_the_run_rate_and_names_the_mark_to_remove():
    f, _ = _detect(_ec2({"costwarden:op": "stop@2026-11-30"}), op="stop")
    assert f is not None and f.monthly_waste_usd == Decimal("1460.00")  # 2.0 x 730
    assert f.evidence["op"] == "stop" and f.evidence["due"] == "2026-11-30" and f.evidence["unmark_tag"] == "costwarden:op"
    overdue, _ = _detect(_ec2({"costwarden:op": "stop@2026-11-01"}), op="stop")
    assert overdue is not None


@pytest.mark.parametrize("tags,state,params", [
    ({"costwarden:op": "stop@2026-12-01"}, "running", {"op": "stop"}),  # not due yet
    ({"costwarden:op": "stop@2026-11-29"}, "running", {"op": "stop", "skew_days": 2}),  # due, but skew
    ({"costwarden:op": "start@2026-11-01"}, "running", {"op": "stop"}),  # another op
    ({"costwarden:op": "stop@2026-11-01"}, "stopped", {"op": "stop"}),  # already stopped
    ({"owner": "bob"}, "running", {"op": "stop"}),  # not marked
    ({"other:op": "stop@2026-11-01"}, "running", {"op": "stop"}),  # mark under another tag
])
def test_marks_that_must_not_fire(tags, state, params):
    f, ctx = _detect(_ec2(tags, state), **params)
    assert f is None and ctx.warnings == []


def test_gcp_label_form_start_op_and_a_custom_tag():
    vm = Resource("gcp", "proj", "us-central1", "gcp.compute", "us-central1-a/vm", kind="a2-highgpu-1g",
                  state="terminated", tags={"cw-wake": "start_2026-11-30"})
    f, _ = _detect(vm, op="start", tag="cw:wake")
    assert f is not None and f.monthly_waste_usd == Decimal("0.00") and f.evidence["unmark_tag"] == "cw-wake"


def test_a_malformed_mark_is_a_warning_and_bad_params_are_refused():
    f, ctx = _detect(_ec2({"costwarden:op": "stop on friday"}), op="stop")
    assert f is None and ctx.warnings == ["i-1: tag costwarden:op 'stop on friday' is not <op>@<YYYY-MM-DD>; ignored"]
    f, ctx = _detect(_ec2({"costwarden:op": "stop@2026-02-30"}), op="stop")
    assert f is None and "is not a date" in ctx.warnings[0]
    with pytest.raises(ValidationError):
        MarkedForOpParams(op="Stop!")
