"""The EC2 actions beyond stop, against moto through real boto3: start, tag/untag, resize of a stopped
instance, resize with restart (crash points, refused changes and starts, reconciliation),
mark-for-op and schedule enforcement in whole sweeps. Each action verifies by reading back,
runs twice for one mutating call, leaves protected resources alone, and a dry-run sends nothing that
mutates (proved at the recording moto server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.actions.base import PlanContext
from costwarden.policies.actions.evidence import PlanError
from costwarden.policies.loader import load_policy_file
from costwarden.policies.registry import actions, load_builtin
from costwarden.state.domain import Finding
from tests.fakes.moto_server import mutating
from costwarden.tools.aws.session import AwsClients
from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.pricing import PriceBook
from costwarden.tools.registry import get_tool

ACCOUNT = "123456789012"
REGION = "us-east-1"
MONDAY_2330 = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)  # inside 22:00-06:00 UTC
MONDAY_1200 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)  # outside it

SCHEDULE_POLICY = """
policies:
  - name: offhours
    resource: aws.ec2
    mode: auto
    filters:
      - schedule
    actions:
      - enforce-schedule
    limits:
      cooldown_hours: 0
      max_monthly_usd_per_auto_action: 100000
"""

MARKED_POLICIES = """
policies:
  - name: marked-stop
    resource: aws.ec2
    mode: auto
    filters:
      - type: marked-for-op
        op: stop
    actions: [stop]
    limits: {cooldown_hours: 0, max_monthly_usd_per_auto_action: 100000}
  - name: marked-resize
    resource: aws.ec2
    mode: auto
    filters:
      - type: marked-for-op
        op: change-instance-type
    actions:
      - type: change-instance-type
        to: g6.12xlarge
    limits: {cooldown_hours: 0, max_monthly_usd_per_auto_action: 100000}
"""


def _launch(ec2, name: str, itype: str = "g5.12xlarge", tags: dict[str, str] | None = None,
            stopped: bool = False) -> str:
    all_tags = [{"Key": "Name", "Value": name}] + [{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    iid = ec2.run_instances(ImageId="ami-0c0ffee0c0ffee000", InstanceType=itype, MinCount=1, MaxCount=1,
                            TagSpecifications=[{"ResourceType": "instance", "Tags": all_tags}])["Instances"][0]["InstanceId"]
    if stopped:
        ec2.stop_instances(InstanceIds=[iid])
    return iid


def _state(ec2, iid: str) -> tuple[str, str, dict[str, str]]:
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return inst["State"]["Name"], inst["InstanceType"], {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def _policies(tmp_path: Path, text: str):
    f = tmp_path / "p.yml"
    f.write_text(text)
    return load_policy_file(f)


def _settings(state_dir: Path) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=[REGION]))


def _finding(iid: str, **evidence) -> Finding:
    return Finding(id="fnd_1", policy="p", detector="d", provider="aws", account=ACCOUNT, region=REGION,
                   resource_id=iid, resource_type="aws.ec2", evidence=evidence,
                   monthly_waste_usd=Decimal("100.00"), severity="medium")


def _ctx(now: datetime = MONDAY_1200, **overrides: float) -> PlanContext:
    """A sweep's planning context: its clock and its price book (shipped tables + `overrides`)."""
    return PlanContext(now=now, price_of=PriceBook(overrides).hourly)


def _action(name: str, **params):
    load_builtin()
    cls = actions.get(name)
    return cls(cls.Params.model_validate(params))


@pytest.fixture
def ec2(aws):
    return boto3.client("ec2", region_name=REGION)


# -- tools ---------------------------------------------------------------------------------------------

def test_start_verifies_running_and_a_second_start_makes_no_call(aws, ec2):
    iid = _launch(ec2, "stopped-one", stopped=True)
    aws.clear_calls()
    spec = get_tool("aws.ec2.start_instance")
    clients = AwsClients(dry_run=False)
    args = {"account": ACCOUNT, "region": REGION, "instance_id": iid}
    assert not spec.is_done(spec.observe(clients, **args))
    out = spec.run(clients, **args)
    assert out.ok and out.after["state"] == "running" and spec.is_done(out.after)
    again = spec.run(clients, **args)
    assert again.ok and "nothing to do" in again.detail
    assert mutating(aws.calls) == ["StartInstances"]


def test_tag_and_untag_merge_verify_and_are_idempotent(aws, ec2):
    iid = _launch(ec2, "tagged", tags={"team": "ml"})
    aws.clear_calls()
    clients = AwsClients(dry_run=False)
    where = {"account": ACCOUNT, "region": REGION, "instance_id": iid}
    tag, untag = get_tool("aws.ec2.tag_resource"), get_tool("aws.ec2.untag_resource")
    assert not tag.is_done(tag.observe(clients, **where, tags={"costwarden:op": "stop@2026-12-04"}))
    out = tag.run(clients, **where, tags={"costwarden:op": "stop@2026-12-04"})
    assert out.ok and tag.is_done(out.after)
    # what start-up reconciliation reads after a crash: the action's own args say whether it happened
    assert tag.is_done(tag.observe(clients, **where, tags={"costwarden:op": "stop@2026-12-04"}))
    assert _state(ec2, iid)[2] == {"Name": "tagged", "team": "ml", "costwarden:op": "stop@2026-12-04"}
    assert tag.run(clients, **where, tags={"costwarden:op": "stop@2026-12-04"}).detail.startswith("tags already set")
    # an earlier mark for the same op stands against a later date: the notice is not pushed forward
    kept = tag.run(clients, **where, tags={"costwarden:op": "stop@2026-12-09"}, keep_prefix="stop@")
    assert kept.ok and _state(ec2, iid)[2]["costwarden:op"] == "stop@2026-12-04"
    # ...but a mark for another op is replaced
    assert tag.run(clients, **where, tags={"costwarden:op": "start@2026-12-09"}, keep_prefix="start@").ok
    assert _state(ec2, iid)[2]["costwarden:op"] == "start@2026-12-09"
    gone = untag.run(clients, **where, keys=["costwarden:op"])
    assert gone.ok and untag.is_done(gone.after) and "costwarden:op" not in _state(ec2, iid)[2]
    assert untag.run(clients, **where, keys=["costwarden:op"]).detail.startswith("tags already absent")
    assert mutating(aws.calls) == ["CreateTags", "CreateTags", "DeleteTags"]
    with pytest.raises(ToolError, match="'aws:' is reserved"):
        tag.run(clients, **where, tags={"aws:cloudformation:stack": "x"})


def test_modify_instance_type_refuses_a_running_instance_and_resizes_a_stopped_one(aws, ec2):
    running = _launch(ec2, "running")
    stopped = _launch(ec2, "stopped", stopped=True)
    aws.clear_calls()
    spec = get_tool("aws.ec2.modify_instance_type")
    clients = AwsClients(dry_run=False)
    with pytest.raises(ToolError, match=r"is running; stop it before changing its type \(g5.12xlarge -> g6.12xlarge\)"):
        spec.run(clients, account=ACCOUNT, region=REGION, instance_id=running, instance_type="g6.12xlarge")
    assert mutating(aws.calls) == []
    args = {"account": ACCOUNT, "region": REGION, "instance_id": stopped, "instance_type": "g6.12xlarge"}
    out = spec.run(clients, **args)
    assert out.ok and out.after["instance_type"] == "g6.12xlarge" and spec.is_done(out.after)
    assert _state(ec2, stopped)[:2] == ("stopped", "g6.12xlarge")
    assert spec.run(clients, **args).detail.startswith("already g6.12xlarge")
    assert mutating(aws.calls) == ["ModifyInstanceAttribute"]


def test_dry_run_refuses_every_new_mutating_call_before_it_leaves_the_process(aws, ec2):
    iid = _launch(ec2, "x", stopped=True)
    aws.clear_calls()
    clients = AwsClients(dry_run=True)
    where = {"account": ACCOUNT, "region": REGION, "instance_id": iid}
    for tool, extra, op in [("aws.ec2.start_instance", {}, "StartInstances"),
                            ("aws.ec2.tag_resource", {"tags": {"a": "b"}}, "CreateTags"),
                            ("aws.ec2.untag_resource", {"keys": ["Name"]}, "DeleteTags"),
                            ("aws.ec2.modify_instance_type", {"instance_type": "g6.12xlarge"},
                             "ModifyInstanceAttribute")]:
        with pytest.raises(DryRunViolation, match=op):
            get_tool(tool).run(clients, **where, **extra)
    assert mutating(aws.calls) == []
    assert clients.call_log.refused == {"ec2.StartInstances": 1, "ec2.CreateTags": 1, "ec2.DeleteTags": 1,
                                        "ec2.ModifyInstanceAttribute": 1}


# -- actions -------------------------------------------------------------------------------------------

def test_mark_for_op_plans_a_dated_tag_and_running_the_plan_twice_makes_one_call(aws, ec2):
    iid = _launch(ec2, "idle")
    aws.clear_calls()
    mark = _action("mark-for-op", op="stop", days=4)
    call = mark.plan(_finding(iid), _ctx(MONDAY_1200))
    assert call.tool == "aws.ec2.tag_resource" and call.projected_monthly_savings_usd == Decimal("0.00")
    assert call.args["tags"] == {"costwarden:op": "stop@2026-12-04"} and call.args["keep_prefix"] == "stop@"
    clients = AwsClients(dry_run=False)
    assert get_tool(call.tool).run(clients, **call.args).ok
    later = mark.plan(_finding(iid), _ctx(MONDAY_1200 + timedelta(days=1)))  # tomorrow's sweep plans again
    assert get_tool(later.tool).run(clients, **later.args).ok
    assert _state(ec2, iid)[2]["costwarden:op"] == "stop@2026-12-04"
    assert mutating(aws.calls) == ["CreateTags"]


def test_action_params_are_validated_and_evidence_references_fail_in_one_line():
    with pytest.raises(ValueError, match="unknown op 'stpo'"):
        _action("mark-for-op", op="stpo")
    resize = _action("change-instance-type", to={"from_evidence": "proposed_instance_type"})
    with pytest.raises(PlanError, match=r"field 'to': finding fnd_1 \(d on i-1\) has no evidence key "
                                        r"'proposed_instance_type'"):
        resize.plan(_finding("i-1", instance_type="g5.12xlarge"), _ctx())
    call = resize.plan(_finding("i-1", instance_type="g5.12xlarge", proposed_instance_type="g6.12xlarge"), _ctx())
    assert call.tool == "aws.ec2.modify_instance_type" and call.args["instance_type"] == "g6.12xlarge"
    assert call.projected_monthly_savings_usd == Decimal("781.39")  # (5.672 - 4.6016) x 730
    nested = _action("change-instance-type", to={"from_evidence": "alternative.instance_type"})
    nested_call = nested.plan(_finding("i-1", alternative={"instance_type": "g6.12xlarge"}), _ctx())
    assert nested_call.args["instance_type"] == "g6.12xlarge"
    upsize = _action("change-instance-type", to="g6e.48xlarge").plan(_finding("i-1", instance_type="g5.12xlarge"), _ctx())
    assert upsize.projected_monthly_savings_usd == Decimal("0.00")  # an upsize is no saving
    with pytest.raises(PlanError, match="not a schedule finding"):
        _action("enforce-schedule").plan(_finding("i-1"), _ctx())


def test_plans_take_the_sweeps_clock_and_price_book_not_the_wall_clock_or_shipped_tables():
    mark = _action("mark-for-op", op="stop", days=4)
    far = datetime(2031, 6, 15, 23, 59, tzinfo=timezone.utc)  # years from the wall clock
    assert mark.plan(_finding("i-1"), _ctx(far)).args["tags"] == {"costwarden:op": "stop@2031-06-19"}
    berlin = datetime(2031, 6, 16, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # still the 15th in UTC
    assert mark.plan(_finding("i-1"), _ctx(berlin)).args["tags"] == {"costwarden:op": "stop@2031-06-19"}

    resize = _action("change-instance-type", to="g6.12xlarge")
    finding = _finding("i-1", instance_type="g5.12xlarge")  # g5.12xlarge $5.672/h in the shipped table
    assert resize.plan(finding, _ctx()).projected_monthly_savings_usd == Decimal("781.39")  # g6.12xlarge $4.6016/h
    assert resize.plan(finding, _ctx(**{"g6.12xlarge": 5.0})).projected_monthly_savings_usd == Decimal("490.56")
    assert resize.plan(finding, _ctx(**{"us-east-1/g6.12xlarge": 5.5})).projected_monthly_savings_usd == \
        Decimal("125.56")  # (5.672 - 5.5) x 730: a region-scoped override
    assert resize.plan(finding, _ctx(**{"eu-west-1/g6.12xlarge": 0.1})).projected_monthly_savings_usd == \
        Decimal("781.39")  # another region's override does not apply
    schedule = _action("schedule", start="20:00", end="08:00", timezone="UTC")  # no hourly price in the finding
    assert schedule.plan(finding, _ctx(**{"g5.12xlarge": 2.0})).projected_monthly_savings_usd == Decimal("730.00")


def test_schedule_action_tags_the_proposed_window_and_prices_the_off_hours(aws, ec2):
    iid = _launch(ec2, "dev-box")
    aws.clear_calls()
    proposal = {"window_start": "23:00", "window_end": "06:00", "timezone": "Europe/Berlin",
                "days": ["mon", "tue", "wed", "thu", "fri"], "hourly_price_usd": 5.672}
    call = _action("schedule").plan(_finding(iid, **proposal), _ctx())
    assert call.args["tags"] == {"costwarden:schedule": "23:00-06:00 Europe/Berlin mon,tue,wed,thu,fri"}
    assert call.projected_monthly_savings_usd == Decimal("862.62")  # 5.672 x 730 x 35/168
    fixed = _action("schedule", start="20:00", end="08:00", timezone="UTC").plan(_finding(iid, hourly_price_usd=1), _ctx())
    assert fixed.args["tags"] == {"costwarden:schedule": "20:00-08:00 UTC"}
    assert fixed.projected_monthly_savings_usd == Decimal("365.00")  # half of every day
    with pytest.raises(PlanError, match="field 'timezone': .*unknown time zone 'Mars/Olympus'"):
        _action("schedule", timezone="Mars/Olympus").plan(_finding(iid, **proposal), _ctx())
    clients = AwsClients(dry_run=False)
    for _ in range(2):
        assert get_tool(call.tool).run(clients, **call.args).ok
    assert mutating(aws.calls) == ["CreateTags"]


# -- sweeps --------------------------------------------------------------------------------------------

def test_schedule_sweeps_stop_in_the_window_and_start_only_what_costwarden_stopped(aws, ec2, tmp_path, state_dir,
                                                                                   no_costwarden_env):
    sched = {"costwarden:schedule": "22:00-06:00 UTC"}
    dev = _launch(ec2, "dev", tags=sched)
    guarded = _launch(ec2, "guarded", tags={**sched, "costwarden:protect": "true"})
    daytime = _launch(ec2, "daytime", tags={"costwarden:schedule": "01:00-05:00 UTC"})
    human = _launch(ec2, "human-stopped", tags=sched, stopped=True)  # stopped by a person, no mark
    aws.clear_calls()
    policies = _policies(tmp_path, SCHEDULE_POLICY)

    night = run_sweep(_settings(state_dir), policies, dry_run=False, now=MONDAY_2330)
    assert night.errors == []
    [act] = night.actions
    assert (act.action, act.tool, act.status) == ("enforce-schedule", "aws.ec2.stop_instance", "done")
    assert act.args["instance_id"] == dev and act.args["mark_tag"] == "costwarden:stopped-by-schedule"
    assert act.projected_monthly_savings_usd == Decimal("1380.19")  # 5.672 x 730 x 8/24
    state, _, tags = _state(ec2, dev)
    assert state == "stopped" and tags["costwarden:stopped-by-schedule"].endswith("Z")
    assert _state(ec2, guarded)[0] == "running" and _state(ec2, daytime)[0] == "running"
    assert mutating(aws.calls) == ["StopInstances", "CreateTags"]

    aws.clear_calls()  # the same night again: nothing left to do
    again = run_sweep(_settings(state_dir), policies, dry_run=False, now=MONDAY_2330 + timedelta(minutes=30))
    assert again.actions == [] and mutating(aws.calls) == []

    aws.clear_calls()  # next morning: start what the schedule stopped, and only that
    morning = run_sweep(_settings(state_dir), policies, dry_run=False, now=MONDAY_2330 + timedelta(hours=8))
    [start] = morning.actions
    assert (start.tool, start.args["instance_id"], start.status) == ("aws.ec2.start_instance", dev, "done")
    state, _, tags = _state(ec2, dev)
    assert state == "running" and "costwarden:stopped-by-schedule" not in tags
    assert _state(ec2, human)[0] == "stopped"
    assert mutating(aws.calls) == ["StartInstances", "DeleteTags"]


def test_a_person_starting_the_instance_inside_the_window_is_respected_until_the_next_one(
        aws, ec2, tmp_path, state_dir, no_costwarden_env):
    # the enforcer stopped it at 23:00 (its mark); someone started it again to work late
    dev = _launch(ec2, "dev", tags={"costwarden:schedule": "22:00-06:00 UTC",
                                    "costwarden:stopped-by-schedule": "2026-11-30T23:00:00Z"})
    aws.clear_calls()
    policies = _policies(tmp_path, SCHEDULE_POLICY)
    assert run_sweep(_settings(state_dir), policies, dry_run=False, now=MONDAY_2330 + timedelta(minutes=15)).actions == []
    assert mutating(aws.calls) == []
    [act] = run_sweep(_settings(state_dir), policies, dry_run=False, now=MONDAY_2330 + timedelta(days=1)).actions
    assert (act.tool, act.args["instance_id"], act.status) == ("aws.ec2.stop_instance", dev, "done")


def test_marked_for_op_sweep_stops_the_due_and_resizes_the_stopped_but_not_the_early(
        aws, ec2, tmp_path, state_dir, no_costwarden_env):
    due = _launch(ec2, "due", tags={"costwarden:op": "stop@2026-11-28"})
    early = _launch(ec2, "early", tags={"costwarden:op": "stop@2026-12-05"})
    resize = _launch(ec2, "resize", tags={"costwarden:op": "change-instance-type@2026-11-30"}, stopped=True)
    aws.clear_calls()
    result = run_sweep(_settings(state_dir), _policies(tmp_path, MARKED_POLICIES), dry_run=False, now=MONDAY_1200)
    assert result.errors == []
    done = {a.args["instance_id"]: a for a in result.actions}
    assert set(done) == {due, resize} and {a.status for a in done.values()} == {"done"}
    assert done[due].args["unmark_tag"] == "costwarden:op"
    assert done[resize].projected_monthly_savings_usd == Decimal("781.39")
    state, _, tags = _state(ec2, due)
    assert state == "stopped" and "costwarden:op" not in tags  # the mark is spent
    assert _state(ec2, early)[0] == "running" and _state(ec2, resize)[:2] == ("stopped", "g6.12xlarge")
    assert sorted(mutating(aws.calls)) == ["DeleteTags", "ModifyInstanceAttribute", "StopInstances"]


def test_a_sweep_plans_with_its_own_now_and_its_pricing_overrides(aws, ec2, tmp_path, state_dir, no_costwarden_env):
    dev = _launch(ec2, "dev", tags={"costwarden:schedule": "22:00-06:00 UTC"})
    resize = _launch(ec2, "resize", tags={"costwarden:op": "change-instance-type@2026-11-28"}, stopped=True)
    aws.clear_calls()
    text = MARKED_POLICIES + """
  - name: notice
    resource: aws.ec2
    mode: approve
    filters: [schedule]
    actions:
      - {type: mark-for-op, op: stop, days: 4}
"""
    settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=[REGION]),
                        pricing={"overrides": {"g6.12xlarge": 5.0}})
    result = run_sweep(settings, _policies(tmp_path, text), dry_run=True, now=MONDAY_2330)
    assert result.errors == []
    by_id = {a.args["instance_id"]: a for a in result.actions}
    assert set(by_id) == {dev, resize}
    assert by_id[dev].args["tags"] == {"costwarden:op": "stop@2026-12-04"}  # the sweep's Monday + 4 days
    assert by_id[resize].projected_monthly_savings_usd == Decimal("490.56")  # (5.672 - 5.0 override) x 730
    assert mutating(aws.calls) == [] and result.refused_calls == {}


def test_dry_run_sweep_with_every_new_action_makes_zero_mutating_calls(aws, ec2, tmp_path, state_dir,
                                                                        no_costwarden_env):
    _launch(ec2, "dev", tags={"costwarden:schedule": "22:00-06:00 UTC"})
    _launch(ec2, "due", tags={"costwarden:op": "stop@2026-11-28"})
    _launch(ec2, "resize", tags={"costwarden:op": "change-instance-type@2026-11-28"}, stopped=True)
    _launch(ec2, "wake", tags={"costwarden:op": "start@2026-11-28"}, stopped=True)
    aws.clear_calls()
    text = MARKED_POLICIES + SCHEDULE_POLICY.split("policies:", 1)[1] + """
  - name: marked-start
    resource: aws.ec2
    mode: auto
    filters:
      - {type: marked-for-op, op: start}
    actions: [start]
  - name: mark-them
    resource: aws.ec2
    mode: approve
    filters:
      - {type: marked-for-op, op: stop}
    actions:
      - {type: schedule, start: "20:00", end: "08:00"}
"""
    result = run_sweep(_settings(state_dir), _policies(tmp_path, text), dry_run=True, now=MONDAY_2330)
    assert result.errors == []
    assert {a.tool for a in result.actions} == {"aws.ec2.stop_instance", "aws.ec2.modify_instance_type",
                                                "aws.ec2.start_instance", "aws.ec2.tag_resource"}
    assert {a.status for a in result.actions} == {"dry_run"}
    assert mutating(aws.calls) == [] and result.refused_calls == {}
    assert "GetMetricData" not in aws.calls  # these filters read inventory only


def test_a_finding_that_cannot_be_planned_is_one_error_and_the_others_are_planned():
    """The plan node isolates a PlanError to its finding: the sweep goes on with the rest."""
    from types import SimpleNamespace

    from costwarden.agent.engine.nodes.plan import plan
    from costwarden.policies.loader import LoadedPolicy

    resize = _action("change-instance-type", to={"from_evidence": "proposed_instance_type"})
    lp = LoadedPolicy(policy=SimpleNamespace(name="p"), source="test", detectors=[], actions=[resize])
    good = _finding("i-good", instance_type="g5.12xlarge", proposed_instance_type="g6.12xlarge")
    bad = Finding(**{**_finding("i-bad", instance_type="g5.12xlarge").__dict__, "id": "fnd_2"})
    runtime = SimpleNamespace(context=SimpleNamespace(policies={"p": lp}, now=MONDAY_1200, prices=PriceBook()))
    out = plan({"run_id": "run_1", "findings": [bad.to_dict(), good.to_dict()]}, runtime)
    assert [a["args"]["instance_id"] for a in out["actions"]] == ["i-good"]
    assert len(out["errors"]) == 1 and "fnd_2" in out["errors"][0] and "proposed_instance_type" in out["errors"][0]


# -- change-instance-type with restart: true -------------------------------------------------------

RESIZE = "aws.ec2.resize_instance"
RESIZE_MARK = "costwarden:stopped-for-resize"


class Crash(BaseException):
    """The process dying mid-action: not an Exception, so nothing on the way up records a result."""


def _inject(clients: AwsClients, operation: str, *, when=lambda body: True, code: str = "",
            crash: bool = False, times: int = 1) -> list[dict]:
    """Make the next `times` matching calls fail inside botocore (the request never leaves the
    process), the way EC2 answers when it has no capacity or refuses a type. Returns the calls hit."""
    hit: list[dict] = []

    def handler(params, **_):
        body = params.get("body") or {}
        if len(hit) >= times or not when(body):
            return None
        hit.append(body)
        if crash:
            raise Crash(operation)
        return (SimpleNamespace(status_code=500, headers={}),
                {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {}})

    clients.client("ec2", REGION).meta.events.register(f"before-call.ec2.{operation}", handler)
    return hit


def _resize_args(iid: str, to: str = "g6.12xlarge") -> dict:
    return {"account": ACCOUNT, "region": REGION, "instance_id": iid, "instance_type": to}


def test_resize_with_restart_stops_changes_and_starts_a_running_instance_once(aws, ec2):
    iid = _launch(ec2, "inference")
    aws.clear_calls()
    spec, clients = get_tool(RESIZE), AwsClients(dry_run=False)
    assert spec.resume and not spec.is_done(spec.observe(clients, **_resize_args(iid)))
    out = spec.run(clients, **_resize_args(iid))
    assert out.ok and out.detail == "" and spec.is_done(out.after)
    assert (out.after["state"], out.after["instance_type"], out.after["resize_mark"]) == ("running", "g6.12xlarge", None)
    assert _state(ec2, iid)[:2] == ("running", "g6.12xlarge") and RESIZE_MARK not in _state(ec2, iid)[2]
    # the mark goes on before the stop and comes off after the verified start
    assert mutating(aws.calls) == ["CreateTags", "StopInstances", "ModifyInstanceAttribute", "StartInstances",
                                   "DeleteTags"]
    aws.clear_calls()
    again = spec.run(clients, **_resize_args(iid))
    assert again.ok and again.detail == "already g6.12xlarge; nothing to do" and mutating(aws.calls) == []


def test_resize_with_restart_leaves_a_stopped_instance_stopped(aws, ec2):
    iid = _launch(ec2, "parked", stopped=True)
    aws.clear_calls()
    out = get_tool(RESIZE).run(AwsClients(dry_run=False), **_resize_args(iid))
    assert out.ok and _state(ec2, iid)[:2] == ("stopped", "g6.12xlarge")
    assert mutating(aws.calls) == ["ModifyInstanceAttribute"]  # no mark, no start: someone else stopped it


@pytest.mark.parametrize("state,itype,marked,left", [
    ("running", "g5.12xlarge", True, ["StopInstances", "ModifyInstanceAttribute", "StartInstances", "DeleteTags"]),
    ("stopped", "g5.12xlarge", True, ["ModifyInstanceAttribute", "StartInstances", "DeleteTags"]),
    ("stopped", "g6.12xlarge", True, ["StartInstances", "DeleteTags"]),
    ("running", "g6.12xlarge", True, ["DeleteTags"]),
    ("running", "g6.12xlarge", False, []),
    ("stopped", "g6.12xlarge", False, []),
], ids=["cut-before-stop", "cut-after-stop", "cut-after-change", "cut-after-start", "done", "done-stopped"])
def test_a_rerun_reads_where_a_cut_off_resize_stopped_and_does_only_the_rest(aws, ec2, state, itype, marked, left):
    iid = _launch(ec2, "half-done", itype=itype, tags={RESIZE_MARK: "g5.12xlarge"} if marked else None,
                  stopped=state == "stopped")
    aws.clear_calls()
    spec, clients = get_tool(RESIZE), AwsClients(dry_run=False)
    seen = spec.observe(clients, **_resize_args(iid))
    assert spec.is_done(seen) == (not left) and seen["resize_mark"] == ("g5.12xlarge" if marked else None)
    assert spec.run(clients, **_resize_args(iid)).ok
    assert mutating(aws.calls) == left
    # a marked instance was stopped by us and runs again; an unmarked stopped one stays stopped
    assert _state(ec2, iid)[:2] == ("running" if marked or state == "running" else "stopped", "g6.12xlarge")
    assert RESIZE_MARK not in _state(ec2, iid)[2]


def test_no_capacity_for_the_new_type_restores_the_old_one_and_starts_it_again(aws, ec2):
    iid = _launch(ec2, "inference")
    aws.clear_calls()
    clients = AwsClients(dry_run=False)
    hit = _inject(clients, "StartInstances", code="InsufficientInstanceCapacity")
    out = get_tool(RESIZE).run(clients, **_resize_args(iid))
    assert len(hit) == 1 and not out.ok
    assert out.detail == (f"ec2 StartInstances {iid} in {REGION}: InsufficientInstanceCapacity: injected "
                          f"InsufficientInstanceCapacity; restored g5.12xlarge and started it again")
    assert "\n" not in out.detail
    state, itype, tags = _state(ec2, iid)
    assert (state, itype) == ("running", "g5.12xlarge") and RESIZE_MARK not in tags
    # the refused start never reached EC2; the change was undone and the old type started
    assert mutating(aws.calls) == ["CreateTags", "StopInstances", "ModifyInstanceAttribute", "ModifyInstanceAttribute",
                                   "StartInstances", "DeleteTags"]


def test_a_refused_type_change_starts_the_instance_again_unchanged(aws, ec2):
    iid = _launch(ec2, "inference")
    aws.clear_calls()
    clients = AwsClients(dry_run=False)
    _inject(clients, "ModifyInstanceAttribute", code="InvalidParameterCombination",
            when=lambda body: body.get("InstanceType.Value") == "g6.12xlarge")
    out = get_tool(RESIZE).run(clients, **_resize_args(iid))
    assert not out.ok and out.detail.endswith("InvalidParameterCombination; started it again as g5.12xlarge")
    assert _state(ec2, iid)[:2] == ("running", "g5.12xlarge") and RESIZE_MARK not in _state(ec2, iid)[2]
    assert mutating(aws.calls) == ["CreateTags", "StopInstances", "StartInstances", "DeleteTags"]


def test_when_the_restore_fails_too_the_instance_stays_stopped_and_marked_with_one_line(aws, ec2):
    iid = _launch(ec2, "inference")
    aws.clear_calls()
    clients = AwsClients(dry_run=False)
    _inject(clients, "StartInstances", code="InsufficientInstanceCapacity", times=2)
    with pytest.raises(ToolError) as err:
        get_tool(RESIZE).run(clients, **_resize_args(iid))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"ec2 StartInstances {iid} in {REGION}: InsufficientInstanceCapacity")
    assert msg.endswith(f"restoring g5.12xlarge failed too (ec2 StartInstances {iid} in {REGION}: "
                        f"InsufficientInstanceCapacity: injected InsufficientInstanceCapacity): ec2 instance {iid} "
                        f"in {REGION} is left stopped, marked {RESIZE_MARK}=g5.12xlarge")
    assert _state(ec2, iid) == ("stopped", "g5.12xlarge", {"Name": "inference", RESIZE_MARK: "g5.12xlarge"})


def test_dry_run_resize_with_restart_refuses_the_first_mutating_call(aws, ec2):
    iid = _launch(ec2, "inference")
    aws.clear_calls()
    clients = AwsClients(dry_run=True)
    with pytest.raises(DryRunViolation, match="CreateTags"):
        get_tool(RESIZE).run(clients, **_resize_args(iid))
    assert mutating(aws.calls) == [] and _state(ec2, iid)[:2] == ("running", "g5.12xlarge")


def test_restart_plans_the_resize_tool_and_the_guard_asks_a_person_even_in_auto_mode():
    from costwarden.policies.guard import GuardContext, decide
    from costwarden.policies.schema import Policy
    from costwarden.state.domain import PlannedAction

    finding = _finding("i-1", instance_type="g5.12xlarge")
    plain = _action("change-instance-type", to="g6.12xlarge").plan(finding, _ctx())
    restart = _action("change-instance-type", to="g6.12xlarge", restart=True).plan(finding, _ctx())
    trusted = _action("change-instance-type", to="g6.12xlarge", restart=True,
                      restart_without_approval=True).plan(finding, _ctx())
    assert (plain.tool, plain.approval_reason) == ("aws.ec2.modify_instance_type", "")
    assert restart.tool == trusted.tool == RESIZE and restart.args == plain.args
    assert restart.projected_monthly_savings_usd == Decimal("781.39")
    policy = Policy.model_validate({"name": "p", "resource": "aws.ec2", "mode": "auto",
                                    "filters": [{"type": "idle-gpu"}], "actions": ["stop"],
                                    "limits": {"max_monthly_usd_per_auto_action": 100000}})

    def decision(call):
        a = PlannedAction("act_1", "fnd_1", "p", "change-instance-type", call.tool, call.args,
                          call.projected_monthly_savings_usd, "aws:1:us-east-1:i-1",
                          approval_reason=call.approval_reason)
        return decide(policy, a, {}, GuardContext(MONDAY_1200))

    assert decision(plain)[0] == "auto"
    assert decision(restart) == ("needs_approval", ("restart: true stops and starts a running instance "
                                                    "(downtime); needs approval even in auto mode"))
    assert decision(trusted)[0] == "auto"
    with pytest.raises(ValueError, match="restart"):
        _action("change-instance-type", to="g6.12xlarge", restart="sometimes")
    with pytest.raises(ValueError, match="restart_without_approval applies only with restart: true"):
        _action("change-instance-type", to="g6.12xlarge", restart_without_approval=True)


RESTART_POLICY = """
policies:
  - name: right-size
    resource: aws.ec2
    mode: auto
    filters:
      - type: marked-for-op
        op: change-instance-type
    actions:
      - type: change-instance-type
        to: g6.12xlarge
        restart: true
    limits: {cooldown_hours: 0, max_monthly_usd_per_auto_action: 100000}
"""


def test_a_restart_resize_waits_for_approval_then_runs_once(aws, ec2, tmp_path, state_dir, no_costwarden_env):
    from costwarden.agent.engine.approvals import decide
    from costwarden.state.clock import clock_at
    from costwarden.state.store import Store

    iid = _launch(ec2, "inference", tags={"costwarden:op": "change-instance-type@2026-11-30"})
    aws.clear_calls()
    settings = Settings(state_dir=state_dir, dry_run=False, aws=AwsSettings(regions=[REGION]))
    policies = _policies(tmp_path, RESTART_POLICY)
    dry = run_sweep(settings, policies, dry_run=True, now=MONDAY_1200)
    assert [(a.tool, a.decision, a.status) for a in dry.actions] == [(RESIZE, "needs_approval", "dry_run")]
    assert mutating(aws.calls) == [] and dry.refused_calls == {}

    [act] = run_sweep(settings, policies, dry_run=False, now=MONDAY_1200).actions
    assert (act.tool, act.decision, act.status) == (RESIZE, "needs_approval", "awaiting_approval")
    assert "downtime" in act.reason and mutating(aws.calls) == []  # nothing before a person says yes
    store = Store(settings.db_url)
    with clock_at(MONDAY_1200 + timedelta(minutes=5)):  # a person clicks five minutes after that sweep
        assert decide(settings, store, act.id, actor="cli:alice", decision="approve") == "approved"
    assert store.get_action(act.id).status == "done"
    assert _state(ec2, iid)[:2] == ("running", "g6.12xlarge")
    assert [mutating(aws.calls).count(op) for op in ("StopInstances", "ModifyInstanceAttribute",
                                                     "StartInstances")] == [1, 1, 1]


def test_a_resize_cut_off_between_change_and_start_is_finished_by_start_up_reconciliation(
        aws, ec2, tmp_path, state_dir, no_costwarden_env):
    from costwarden.agent.engine.context import Providers
    from costwarden.agent.engine.execute import execute_action
    from costwarden.agent.engine.reconcile import reconcile_pending
    from costwarden.state.domain import PlannedAction
    from costwarden.state.store import Store

    iid = _launch(ec2, "inference")
    aws.clear_calls()
    store = Store(f"sqlite:///{tmp_path}/cw.db")
    store.start_run("run_1", dry_run=False, policies=["p"], trigger="test")
    store.add_findings("run_1", [_finding(iid, instance_type="g5.12xlarge")])
    a = PlannedAction("act_1", "fnd_1", "p", "change-instance-type", RESIZE, _resize_args(iid), Decimal("781.39"),
                      f"aws:{ACCOUNT}:{REGION}:{iid}", decision="needs_approval", status="awaiting_approval")
    store.add_action("run_1", a, policy_hash="h")
    store.set_action_status("act_1", "approved")  # a new action is never born approved (state/lifecycle.py)
    a.status = "approved"
    settings = Settings(state_dir=state_dir, dry_run=False, aws=AwsSettings(regions=[REGION]))
    first = Providers(settings, dry_run=False)
    _inject(first.aws, "StartInstances", crash=True)
    with pytest.raises(Crash):
        execute_action(store, first, a, run_id="run_1", policy_hash="h")
    assert store.get_action("act_1").status == "pending"  # the record a killed process leaves
    assert _state(ec2, iid) == ("stopped", "g6.12xlarge", {"Name": "inference", RESIZE_MARK: "g5.12xlarge"})
    assert mutating(aws.calls) == ["CreateTags", "StopInstances", "ModifyInstanceAttribute"]

    aws.clear_calls()  # a restart in dry-run changes nothing and keeps the action for later
    assert reconcile_pending(store, Providers(settings, dry_run=True))["deferred"] == 1
    assert store.get_action("act_1").status == "pending" and mutating(aws.calls) == []

    counts = reconcile_pending(store, Providers(settings, dry_run=False))
    assert (counts["resumed"], counts["interrupted"]) == (1, 0)
    row = store.get_action("act_1")
    assert row.status == "done" and row.after_state["state"] == "running"
    assert _state(ec2, iid) == ("running", "g6.12xlarge", {"Name": "inference"})
    assert mutating(aws.calls) == ["StartInstances", "DeleteTags"]  # only what was left
    trail = [(d.stage, d.decision) for d in store.decisions(action_id="act_1")]
    assert trail[-3:] == [("reconcile", "deferred"), ("verify", "done"), ("reconcile", "resumed")]
    aws.clear_calls()
    assert reconcile_pending(store, Providers(settings, dry_run=False))["resumed"] == 0 and mutating(aws.calls) == []
