"""The whole graph against moto: dry-run changes nothing; live auto mode stops the idle instances."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.demo.estate import DEMO_REGIONS, seed_estate
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies, load_policy_file
from costwarden.state.store import Store
from tests.fakes.moto_server import mutating

AUTO_POLICY = """
policies:
  - name: stop-idle-gpus
    resource: aws.ec2
    mode: auto
    filters:
      - type: idle-gpu
        lookback_days: 7
    actions:
      - stop
    limits:
      max_monthly_usd_per_auto_action: 50000
"""


@pytest.fixture
def estate(aws) -> dict[str, str]:
    ids = seed_estate(aws.endpoint)
    aws.clear_calls()
    return ids


def _settings(state_dir: Path, **kw) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=DEMO_REGIONS), **kw)


def _state(instance_id: str, region: str = "us-east-1") -> str:
    ec2 = boto3.client("ec2", region_name=region)
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_dry_run_finds_idle_gpus_and_makes_zero_mutating_calls(aws, estate, state_dir, no_costwarden_env):
    result = run_sweep(_settings(state_dir), load_policies([]), dry_run=True)

    by_detector = {d: {f.resource_id for f in result.findings if f.detector == d}
                   for d in {f.detector for f in result.findings}}
    assert by_detector == {
        "idle-gpu": {estate["llm-finetune-01"], estate["llm-finetune-02"], estate["embeddings-batch"]},
        "training-hardware-for-inference": {estate["chatbot-inference"]},  # a p4d serving at ~20%
        "off-hours-idle": {estate["vision-dev"]},  # busy by day, idle every night
    }
    found = [f.resource_id for f in result.findings]
    assert len(found) == len(set(found))  # no resource is two findings: idle is never also under-used
    assert estate["inference-h100"] not in found  # busy
    assert estate["notebook-alice"] not in found  # protected
    assert result.inventoried == 10  # ten instances, counted once though three EC2 policies inventory them

    # proof below our code: the server saw reads only
    calls = aws.calls
    assert calls, "the sweep should have called the API"
    assert mutating(calls) == []
    assert "GetMetricData" in calls and "DescribeInstances" in calls
    # one batched call per region, not one per instance nor one per policy: the three EC2 policies
    # share one read of each region's instances and their series (tools/sharing.py)
    assert calls.count("GetMetricData") == 2 and calls.count("DescribeInstances") == 2
    assert calls.count("GetCallerIdentity") == 1
    assert result.refused_calls == {}

    # nothing changed, and every action is marked as a dry run with its would-be decision
    for name in ("llm-finetune-01", "llm-finetune-02", "embeddings-batch"):
        assert _state(estate[name]) == "running"
    assert {a.status for a in result.actions} == {"dry_run"}
    assert {a.decision for a in result.actions} == {"needs_approval"}

    store = Store(_settings(state_dir).db_url)
    run = store.get_run(result.run_id)
    assert run.status == "done" and run.dry_run is True
    assert float(run.monthly_waste_usd) == pytest.approx(float(result.monthly_waste_usd))
    assert len(store.findings_for_run(result.run_id)) == 5
    guard_rows = [d for d in store.decisions(run_id=result.run_id) if d.stage == "guard"]
    assert len(guard_rows) == 3 and all(d.policy_hash and d.reason for d in guard_rows)  # report-only: no actions
    protected_rows = [d for d in store.decisions(run_id=result.run_id) if d.stage == "detect"]
    # the protected g5 is a candidate of idle-gpu and off-hours-idle (not of training-hardware: not a p4d/p5)
    assert {d.policy for d in protected_rows} == {"idle-gpu-instances", "off-hours-idle-instances"}
    assert len(protected_rows) == 2 and all("costwarden:protect=true" in d.reason for d in protected_rows)


def test_live_auto_mode_stops_idle_instances_and_records_before_after(aws, estate, state_dir, tmp_path,
                                                                      no_costwarden_env):
    policy_file = tmp_path / "auto.yml"
    policy_file.write_text(AUTO_POLICY)
    settings = _settings(state_dir, dry_run=False)
    result = run_sweep(settings, load_policy_file(policy_file), dry_run=False)

    by_resource = {a.args["instance_id"]: a for a in result.actions}
    p4d = [estate["llm-finetune-01"], estate["llm-finetune-02"]]
    for iid in p4d:
        assert by_resource[iid].decision == "auto"
        assert by_resource[iid].status == "done"
        assert _state(iid) in ("stopping", "stopped")
    # env=prod needs approval even in auto mode: recorded, not executed
    prod = by_resource[estate["embeddings-batch"]]
    assert (prod.decision, prod.status) == ("needs_approval", "awaiting_approval")
    assert _state(estate["embeddings-batch"]) == "running"
    # protected and busy were never touched
    assert _state(estate["notebook-alice"], "us-west-2") == "running"
    assert _state(estate["inference-h100"]) == "running"
    assert mutating(aws.calls).count("StopInstances") == 2

    store = Store(settings.db_url)
    for iid in p4d:
        row = store.get_action(by_resource[iid].id)
        assert row.before_state["state"] == "running"
        assert row.after_state["state"] in ("stopping", "stopped")
        stages = [d.stage for d in store.decisions(action_id=row.id)]
        assert stages == ["guard", "execute", "verify"]  # logged before and after the call
    assert [a.status for _, a in store.pending_approvals()] == ["awaiting_approval"]

    # a second sweep the same hour does nothing twice: stopped instances are no longer candidates
    aws.clear_calls()
    again = run_sweep(settings, load_policy_file(policy_file), dry_run=False)
    assert not any(f.resource_id in p4d for f in again.findings)
    assert "StopInstances" not in aws.calls
    # and the env=prod one is in cooldown while its approval is pending
    assert [a.decision for a in again.actions] == ["skip"]
    assert "cooldown" in again.actions[0].reason


def test_dry_run_clients_refuse_a_mutating_call_before_it_leaves_the_process(aws, estate):
    from costwarden.tools.aws.ec2 import stop_instance
    from costwarden.tools.aws.session import AwsClients
    from costwarden.tools.errors import DryRunViolation

    clients = AwsClients(dry_run=True)
    with pytest.raises(DryRunViolation, match="ec2.StopInstances"):
        stop_instance(clients, account="123456789012", region="us-east-1", instance_id=estate["llm-finetune-01"])
    assert "StopInstances" not in aws.calls
    assert clients.call_log.refused == {"ec2.StopInstances": 1}
    assert _state(estate["llm-finetune-01"]) == "running"


def test_one_failing_region_is_reported_and_the_rest_go_on(aws, estate, state_dir, no_costwarden_env):
    settings = Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1", "xx-nowhere-1"]))
    result = run_sweep(settings, load_policies([]), dry_run=True)
    assert result.status == "partial"
    assert any("xx-nowhere-1" in e for e in result.errors)
    assert estate["llm-finetune-01"] in {f.resource_id for f in result.findings}
