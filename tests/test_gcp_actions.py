"""The GCE side of the new actions, through the real google-cloud-compute client against the fake
Compute API: label-safe marks and schedules, stop marks written and removed, remove_labels, a
resize planned from evidence, a live schedule sweep that stops and later starts only what it
stopped, and a resize with restart (stop, setMachineType, start; a crash finished by reconciliation;
no capacity for the new type restores the old one). A dry-run sends no POST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from costwarden.agent.config import Settings
from costwarden.agent.demo.fakes._http import Reply
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.actions.base import PlanContext
from costwarden.policies.loader import load_policy_file
from costwarden.policies.registry import actions, load_builtin
from costwarden.state.domain import Finding
from tests.fakes.gce import FakeGce
from costwarden.tools.errors import DryRunViolation
from costwarden.tools.gcp.compute import remove_labels, set_labels, start_instance, stop_instance
from costwarden.tools.gcp.session import GcpClients
from costwarden.tools.gcp.settings import GcpSettings
from costwarden.tools.pricing import PriceBook
from costwarden.tools.registry import get_tool

PROJECT = "acme-ml-platform"
ZONE = "us-central1-a"
INSIDE = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)  # Monday, inside 22:00-06:00 UTC
POLICY = """
policies:
  - name: offhours
    resource: gcp.compute
    mode: {mode}
    filters: [schedule]
    actions: [enforce-schedule]
    limits:
      cooldown_hours: 0
      max_monthly_usd_per_auto_action: 100000
      protected_tags: {{"costwarden-protect": "true"}}
"""


@pytest.fixture
def gce():
    with FakeGce() as fake:
        yield fake


def _clients(gce: FakeGce, dry_run: bool = False) -> GcpClients:
    return GcpClients(dry_run=dry_run, projects=[PROJECT], endpoint_url=gce.endpoint)


def _finding(name: str, **evidence) -> Finding:
    return Finding(id="fnd_1", policy="p", detector="d", provider="gcp", account=PROJECT, region="us-central1",
                   resource_id=f"{ZONE}/{name}", resource_type="gcp.compute", evidence=evidence,
                   monthly_waste_usd=Decimal("10.00"), severity="low")


def _action(name: str, **params):
    load_builtin()
    cls = actions.get(name)
    return cls(cls.Params.model_validate(params))


def test_stop_writes_a_label_safe_mark_and_start_removes_it(gce):
    gce.add_instance(PROJECT, ZONE, "dev", "g2-standard-8", labels={"team": "ml"})
    c = _clients(gce)
    vm = dict(account=PROJECT, region="us-central1", instance_id=f"{ZONE}/dev")
    out = stop_instance(c, **vm, mark_tag="costwarden-stopped-by-schedule")
    assert out.ok and out.after["state"] == "terminated"
    stamp = gce.instance(PROJECT, ZONE, "dev").labels["costwarden-stopped-by-schedule"]
    assert len(stamp) == 16 and stamp.endswith("z") and stamp[8] == "t"  # 20261130t230005z
    assert gce.instance(PROJECT, ZONE, "dev").labels["team"] == "ml"
    gce.clear_calls()
    assert "nothing to do" in stop_instance(c, **vm, mark_tag="costwarden-stopped-by-schedule").detail
    assert gce.mutating_calls() == []  # already stopped: not marked again (it was not this call's stop)
    started = start_instance(c, **vm, unmark_tag="costwarden-stopped-by-schedule")
    assert started.ok and started.after["state"] == "running"
    assert gce.instance(PROJECT, ZONE, "dev").labels == {"team": "ml"}
    assert [p.rsplit("/", 1)[-1] for _, p in gce.mutating_calls()] == ["start", "setLabels"]


def test_set_labels_keeps_an_earlier_mark_and_remove_labels_is_idempotent(gce):
    gce.add_instance(PROJECT, ZONE, "box", "e2-standard-4", labels={"costwarden-op": "stop_2026-12-01"})
    c = _clients(gce)
    vm = dict(account=PROJECT, region="us-central1", instance_id=f"{ZONE}/box")
    call = _action("mark-for-op", op="stop", days=4).plan(_finding("box"), PlanContext(INSIDE, PriceBook().hourly))
    assert call.tool == "gcp.compute.set_labels"
    assert call.args["labels"] == {"costwarden-op": "stop_2026-12-04"} and call.args["keep_prefix"] == "stop_"
    assert get_tool(call.tool).run(c, **call.args).ok
    assert gce.mutating_calls() == []  # the earlier mark stands
    assert set_labels(c, **vm, labels={"owner": "bob"}).ok
    assert remove_labels(c, **vm, keys=["costwarden-op"]).ok
    assert gce.instance(PROJECT, ZONE, "box").labels == {"owner": "bob"}
    gce.clear_calls()
    assert "already absent" in remove_labels(c, **vm, keys=["costwarden-op"]).detail
    assert gce.mutating_calls() == []


def test_schedule_and_resize_actions_plan_gce_tools_with_label_safe_values():
    proposal = {"window_start": "23:00", "window_end": "06:00", "timezone": "America/Los_Angeles",
                "days": "Mon-Fri", "hourly_price_usd": 1.0}
    call = _action("schedule").plan(_finding("dev", **proposal), PlanContext(INSIDE, PriceBook().hourly))
    assert call.tool == "gcp.compute.set_labels"
    assert call.args["labels"] == {"costwarden-schedule": "2300-0600_mtwtf--_america--los_angeles"}
    assert call.projected_monthly_savings_usd == Decimal("152.08")  # 1.0 x 730 x 35/168
    resize = _action("change-instance-type", to={"from_evidence": "proposed_instance_type"}).plan(
        _finding("dev", instance_type="a2-highgpu-1g", proposed_instance_type="g2-standard-8"),
        PlanContext(INSIDE, PriceBook().hourly))
    assert resize.tool == "gcp.compute.set_machine_type" and resize.args["machine_type"] == "g2-standard-8"
    assert resize.projected_monthly_savings_usd == Decimal("2058.43")  # (3.673385 - 0.853624) x 730


def test_live_schedule_sweep_on_gce_stops_then_starts_only_what_it_stopped(gce, tmp_path, no_costwarden_env):
    sched = {"costwarden-schedule": "2200-0600_mtwtfss_utc"}
    gce.add_instance(PROJECT, ZONE, "dev", "g2-standard-8", labels=sched)
    gce.add_instance(PROJECT, ZONE, "guarded", "g2-standard-8", labels={**sched, "costwarden-protect": "true"})
    gce.add_instance(PROJECT, ZONE, "human", "g2-standard-8", labels=sched, status="TERMINATED")
    path = tmp_path / "p.yml"
    path.write_text(POLICY.format(mode="auto"))
    policies = load_policy_file(path)
    settings = Settings(state_dir=tmp_path / "state", gcp=GcpSettings(projects=[PROJECT], endpoint_url=gce.endpoint))

    dry = run_sweep(settings, policies, dry_run=True, now=INSIDE)
    assert [a.status for a in dry.actions] == ["dry_run"] and gce.mutating_calls() == []

    night = run_sweep(settings, policies, dry_run=False, now=INSIDE)
    [stop] = night.actions
    assert (stop.tool, stop.args["instance_id"], stop.status) == ("gcp.compute.stop_instance", f"{ZONE}/dev", "done")
    assert stop.args["mark_tag"] == "costwarden-stopped-by-schedule"
    assert gce.instance(PROJECT, ZONE, "dev").status == "TERMINATED"
    assert gce.instance(PROJECT, ZONE, "guarded").status == "RUNNING"

    morning = run_sweep(settings, policies, dry_run=False, now=INSIDE + timedelta(hours=8))
    [start] = morning.actions
    assert (start.tool, start.args["instance_id"], start.status) == ("gcp.compute.start_instance", f"{ZONE}/dev", "done")
    assert gce.instance(PROJECT, ZONE, "dev").status == "RUNNING"
    assert "costwarden-stopped-by-schedule" not in gce.instance(PROJECT, ZONE, "dev").labels
    assert gce.instance(PROJECT, ZONE, "human").status == "TERMINATED"  # a person stopped it


# -- change-instance-type with restart: true -------------------------------------------------------

RESIZE_MARK = "costwarden-stopped-for-resize"


class ScarceGce(FakeGce):
    """Compute Engine with no capacity left in the zone for some machine types: starting an instance of
    one of them is refused, as GCE does with ZONE_RESOURCE_POOL_EXHAUSTED."""

    def __init__(self, scarce: set[str]) -> None:
        super().__init__()
        self.scarce = scarce

    def _mutate(self, inst, verb, query, body):
        if verb == "start" and inst.machine_type in self.scarce:
            raise Reply(503, {"error": {"code": 503, "message": f"The zone does not have enough resources available "
                                        f"to fulfill the request. '{inst.machine_type}' is exhausted.",
                                        "errors": [{"reason": "ZONE_RESOURCE_POOL_EXHAUSTED", "domain": "global",
                                                    "message": "exhausted"}]}})
        return super()._mutate(inst, verb, query, body)


def _verbs(gce: FakeGce) -> list[str]:
    return [p.rsplit("/", 1)[-1] for _, p in gce.mutating_calls()]


def _resize(name: str, to: str = "g2-standard-8") -> dict:
    return {"account": PROJECT, "region": "us-central1", "instance_id": f"{ZONE}/{name}", "machine_type": to}


def test_gce_resize_with_restart_stops_changes_and_starts_a_running_instance_once(gce):
    gce.add_instance(PROJECT, ZONE, "serve", "a2-highgpu-1g", labels={"team": "ml"})
    spec, c = get_tool("gcp.compute.resize_instance"), _clients(gce)
    assert spec.resume and not spec.is_done(spec.observe(c, **_resize("serve")))
    out = spec.run(c, **_resize("serve", "g2-standard-8"))
    assert out.ok and spec.is_done(out.after) and out.after["state"] == "running"
    inst = gce.instance(PROJECT, ZONE, "serve")
    assert (inst.status, inst.machine_type, inst.labels) == ("RUNNING", "g2-standard-8", {"team": "ml"})
    assert _verbs(gce) == ["setLabels", "stop", "setMachineType", "start", "setLabels"]
    gce.clear_calls()
    assert spec.run(c, **_resize("serve")).detail == "already g2-standard-8; nothing to do"
    assert gce.mutating_calls() == []


def test_gce_resize_with_restart_leaves_a_stopped_instance_stopped(gce):
    gce.add_instance(PROJECT, ZONE, "parked", "a2-highgpu-1g", status="TERMINATED")
    assert get_tool("gcp.compute.resize_instance").run(_clients(gce), **_resize("parked")).ok
    inst = gce.instance(PROJECT, ZONE, "parked")
    assert (inst.status, inst.machine_type) == ("TERMINATED", "g2-standard-8")
    assert _verbs(gce) == ["setMachineType"]


def test_gce_resize_cut_off_between_change_and_start_is_finished_by_reconciliation(gce, tmp_path, monkeypatch):
    from costwarden.agent.engine.context import Providers
    from costwarden.agent.engine.reconcile import reconcile_pending
    from costwarden.state.domain import PlannedAction
    from costwarden.state.store import Store
    from costwarden.tools.gcp import compute

    class Crash(BaseException):
        pass

    def killed(self):
        raise Crash("the process died before the start")

    gce.add_instance(PROJECT, ZONE, "serve", "a2-highgpu-1g")
    store = Store(f"sqlite:///{tmp_path}/cw.db")
    store.start_run("run_1", dry_run=False, policies=["p"], trigger="test")
    store.add_findings("run_1", [_finding("serve")])
    store.add_action("run_1", PlannedAction("act_1", "fnd_1", "p", "change-instance-type",
                                            "gcp.compute.resize_instance", _resize("serve"), Decimal("2058.43"),
                                            f"gcp:{PROJECT}:us-central1:{ZONE}/serve", status="awaiting_approval"),
                     policy_hash="h")
    store.set_action_status("act_1", "approved")  # a new action is never born approved (state/lifecycle.py)
    assert store.claim_action("act_1", from_statuses=("approved",), before_state={}, run_id="run_1", policy="p",
                              policy_hash="h")
    spec = get_tool("gcp.compute.resize_instance")
    with monkeypatch.context() as m:
        m.setattr(compute._GceMachine, "start", killed)
        with pytest.raises(Crash):
            spec.run(_clients(gce), **_resize("serve"))
    inst = gce.instance(PROJECT, ZONE, "serve")
    assert (inst.status, inst.machine_type, inst.labels) == ("TERMINATED", "g2-standard-8",
                                                             {RESIZE_MARK: "a2-highgpu-1g"})
    seen = spec.observe(_clients(gce), **_resize("serve"))
    assert not spec.is_done(seen) and seen["resize_mark"] == "a2-highgpu-1g"

    gce.clear_calls()
    settings = Settings(state_dir=tmp_path / "state", dry_run=False,
                        gcp=GcpSettings(projects=[PROJECT], endpoint_url=gce.endpoint))
    assert reconcile_pending(store, Providers(settings, dry_run=False))["resumed"] == 1
    assert store.get_action("act_1").status == "done"
    inst = gce.instance(PROJECT, ZONE, "serve")
    assert (inst.status, inst.machine_type, inst.labels) == ("RUNNING", "g2-standard-8", {})
    assert _verbs(gce) == ["start", "setLabels"]  # only what was left


def test_gce_start_refused_for_the_new_type_restores_the_old_one_and_starts_it_again():
    with ScarceGce({"g2-standard-8"}) as gce:
        gce.add_instance(PROJECT, ZONE, "serve", "a2-highgpu-1g")
        out = get_tool("gcp.compute.resize_instance").run(_clients(gce), **_resize("serve"))
        assert not out.ok and "\n" not in out.detail
        assert out.detail.startswith(f"gcp instances.start {PROJECT}/{ZONE}/serve: 503 ServiceUnavailable: The zone "
                                     "does not have enough resources")
        assert out.detail.endswith("; restored a2-highgpu-1g and started it again")
        inst = gce.instance(PROJECT, ZONE, "serve")
        assert (inst.status, inst.machine_type, inst.labels) == ("RUNNING", "a2-highgpu-1g", {})
        assert _verbs(gce) == ["setLabels", "stop", "setMachineType", "start", "setMachineType", "start",
                               "setLabels"]


def test_gce_dry_run_resize_with_restart_sends_no_post(gce):
    gce.add_instance(PROJECT, ZONE, "serve", "a2-highgpu-1g")
    with pytest.raises(DryRunViolation):
        get_tool("gcp.compute.resize_instance").run(_clients(gce, dry_run=True), **_resize("serve"))
    assert gce.mutating_calls() == [] and gce.instance(PROJECT, ZONE, "serve").machine_type == "a2-highgpu-1g"


def test_gce_restart_resize_plans_the_resize_tool_and_needs_approval():
    call = _action("change-instance-type", to="g2-standard-8", restart=True).plan(
        _finding("serve", machine_type="a2-highgpu-1g"), PlanContext(INSIDE, PriceBook().hourly))
    assert call.tool == "gcp.compute.resize_instance" and call.args["machine_type"] == "g2-standard-8"
    assert "downtime" in call.approval_reason
    assert call.projected_monthly_savings_usd == Decimal("2058.43")
