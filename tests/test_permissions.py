"""Declared permissions (issue #20, item 3): every filter, action and collector declares the cloud
permissions it uses; `costwarden policies permissions` prints a policy set's least-privilege IAM
document from those declarations; and a sweep of the shipped packs against moto, then the execution
of the actions it planned, uses no operation the policies did not declare (checked against the calls
the server received)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from costwarden.agent.engine.context import Providers
from costwarden.agent.engine.execute import execute_action
from costwarden.policies.detectors.base import Detector
from costwarden.policies.loader import load_policy_file
from costwarden.policies.permissions import declared, gcp_role, iam_policy, is_read, needed
from costwarden.policies.registry import actions, detectors, load_builtin
from costwarden.state.store import Store
from costwarden.tools.collectors import collectors
from costwarden.agent.engine.sweep import run_sweep
from costwarden.state.lifecycle import ActionStatus
from tests.shipped_estate import NOW, estate, settings_for, shipped_aws_policies  # noqa: F401 - estate is a fixture

AWS_PERMISSION = re.compile(r"^[a-z0-9-]+:[A-Z][A-Za-z0-9]+$")
GCP_PERMISSION = re.compile(r"^[a-z]+\.[a-z][A-Za-z]+\.[a-z][A-Za-z]+$")
# botocore operations whose IAM action is named otherwise (the rest are `service:Operation`)
IAM_ACTION_OF = {"s3.ListObjectsV2": "s3:ListBucket", "s3.HeadObject": "s3:GetObject"}


def iam_action(call: str) -> str:
    """'ec2.DescribeInstances' (a counted call) -> 'ec2:DescribeInstances' (its IAM action)."""
    service, _, operation = call.partition(".")
    return IAM_ACTION_OF.get(call, f"{service}:{operation}")


def _registered() -> list[tuple[str, Any]]:
    load_builtin()
    collectors.load_builtin()
    return ([(f"filter {n}", c) for n, c in detectors.items()] + [(f"action {n}", c) for n, c in actions.items()]
            + [(f"resource {n}", s) for n, s in collectors.items()])


@pytest.mark.parametrize("label", [label for label, _ in _registered()])
def test_every_registered_class_declares_well_formed_permissions(label):
    thing = dict(_registered())[label]
    perms = declared(thing)  # raises for a class that declares nothing
    assert isinstance(perms, tuple)
    for p in perms:
        assert AWS_PERMISSION.match(p) or GCP_PERMISSION.match(p), f"{label}: {p!r} is neither service:Action " \
                                                                   f"nor service.resource.verb"


def test_a_class_without_a_declaration_is_refused_by_name():
    class Undeclared(Detector):
        name = "undeclared-filter"

    with pytest.raises(TypeError, match="undeclared-filter declares no permissions"):
        declared(Undeclared)


def test_a_policy_set_needs_its_own_cloud_and_classes_only(tmp_path):
    f = tmp_path / "p.yml"
    f.write_text("""
policies:
  - {name: addresses, resource: aws.elastic-ip, filters: [unassociated-eip]}
  - {name: gpus, resource: gcp.compute, filters: [{type: idle-gpu}], actions: [stop]}
""")
    need = needed(load_policy_file(f))
    doc = iam_policy(need)
    # the stop action is the GCP policy's: none of its EC2 permissions is asked for
    assert doc == {"Version": "2012-10-17", "Statement": [{"Sid": "CostwardenRead", "Effect": "Allow", "Action": [
        "ec2:DescribeAddresses", "sts:GetCallerIdentity"], "Resource": "*"}]}
    role = yaml.safe_load(gcp_role(need))
    assert role["includedPermissions"] == ["compute.instances.get", "compute.instances.list", "compute.instances.setLabels",
                                           "compute.instances.stop", "compute.zoneOperations.get",
                                           "monitoring.timeSeries.list"]
    assert yaml.safe_load(gcp_role(need, read_only=True))["includedPermissions"] == [
        "compute.instances.get", "compute.instances.list", "compute.zoneOperations.get", "monitoring.timeSeries.list"]
    assert not is_read("ec2:StopInstances") and is_read("ec2:DescribeInstances") and is_read("sts:AssumeRole")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "costwarden.agent.cli", "policies", "permissions", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_cli_prints_the_default_packs_iam_document_and_its_read_only_half(tmp_path):
    full = _cli()
    assert full.returncode == 0, full.stderr
    doc = json.loads(full.stdout)
    assert doc["Version"] == "2012-10-17"
    read, write = doc["Statement"]
    assert read["Sid"] == "CostwardenRead" and read["Action"] == sorted(read["Action"])
    assert {"ec2:DescribeInstances", "cloudwatch:GetMetricData", "sts:GetCallerIdentity"} <= set(read["Action"])
    # the default pack's only AWS action is `stop` (DeleteTags: it removes a due mark-for-op mark)
    assert write["Action"] == ["ec2:DeleteTags", "ec2:StopInstances"]
    assert "add --cloud gcp" in full.stderr  # idle-gpu-gcp needs GCP permissions, printed with --cloud gcp

    ro = json.loads(_cli("--read-only").stdout)
    assert ro["Statement"] == [read]

    gcp = yaml.safe_load(_cli("--cloud", "gcp").stdout)
    assert "compute.instances.stop" in gcp["includedPermissions"] and gcp["stage"] == "GA"

    config = tmp_path / "c.yml"
    config.write_text("aws:\n  accounts: ['arn:aws:iam::111122223333:role/costwarden']\npricing:\n  source: price-list-api\n")
    with_settings = json.loads(_cli("-c", str(config), "--read-only").stdout)["Statement"][0]["Action"]
    assert set(with_settings) - set(read["Action"]) == {"sts:AssumeRole", "pricing:GetProducts"}

    bad = _cli("-p", str(tmp_path / "missing.yml"))
    assert bad.returncode == 2 and bad.stdout == "" and "missing.yml" in bad.stderr and "Traceback" not in bad.stderr


def test_a_sweep_and_its_actions_use_only_declared_permissions(aws, estate, tmp_path, no_costwarden_env):
    policies = shipped_aws_policies()
    declared_by_policy = {p.name: set(needed([p]).cloud("aws")) for p in policies}
    allowed = set().union(*declared_by_policy.values())

    settings = settings_for(aws, tmp_path / "state")
    result = run_sweep(settings, policies, dry_run=False, now=NOW)  # approve mode: nothing runs yet
    assert result.errors == [] and result.api_calls
    received = Counter(aws.calls)
    assert {k.split(".", 1)[1]: v for k, v in result.api_calls.items()} == dict(received)  # nothing uncounted
    used = {iam_action(call) for call in result.api_calls}
    assert used - allowed == set()
    assert {"ec2:DescribeInstances", "cloudwatch:GetMetricData", "sagemaker:ListEndpoints"} <= used

    # Approve what the sweep planned (stop, delete-endpoint, snapshot-and-delete) and execute each
    # through the real execution path with a call log of its own: each uses only its policy's permissions.
    store = Store(settings.db_url)
    executed = set()
    try:
        for a in result.actions:
            for voter in ("alice", "bob"):  # a destructive action needs two approvers
                if store.vote(a.id, actor=voter, decision="approve", now=NOW) == ActionStatus.APPROVED:
                    break
            aws.clear_calls()
            providers = Providers(settings, dry_run=False)
            status = execute_action(store, providers, a, run_id=result.run_id, policy_hash="test")
            assert status == "done", (a.tool, status)
            calls = providers.aws_call_log.calls
            assert Counter({k.split(".", 1)[1]: v for k, v in calls.items()}) == Counter(aws.calls)
            assert {iam_action(c) for c in calls} - declared_by_policy[a.policy] == set(), a.tool
            executed.add(a.action)
    finally:
        store.close()
    assert executed == {"stop", "delete-endpoint", "snapshot-and-delete"}
