"""One inventory per sweep (issue #20): the shipped packs on a one-account estate send one
GetCallerIdentity and describe each region's instances, endpoints and volumes once, whatever the
number of policies; and sharing the read changes nothing a policy finds: every policy finds exactly
what it finds when swept alone, also when the policies of a type look back over different windows."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest

from costwarden.agent.engine.sweep import SweepResult
from costwarden.policies.loader import load_policy_file
from costwarden.tools.inventory import Inventory
from tests.shipped_estate import REGIONS, estate, shipped_aws_policies, sweep  # noqa: F401 - estate is a fixture

# The EC2 policies of the shipped packs with three different lookbacks: one read serves them all,
# each policy's series cut to its own window.
MIXED_WINDOWS = """
policies:
  - name: idle-3d
    resource: aws.ec2
    filters: [{type: idle-gpu, lookback_days: 3}]
  - name: hardware-5d
    resource: aws.ec2
    filters: [{type: training-hardware-for-inference, lookback_days: 5}]
  - name: offhours-7d
    resource: aws.ec2
    filters: [{type: off-hours-idle, lookback_days: 7, timezone: UTC}]
"""


def found(result: SweepResult) -> list[tuple[Any, ...]]:
    """What a policy found, without the run-scoped ids."""
    return sorted((f.policy, f.detector, f.resource_id, str(f.monthly_waste_usd), repr(sorted(f.evidence.items())))
                  for f in result.findings)


def test_shipped_packs_describe_each_region_once_and_ask_the_identity_once(aws, estate, tmp_path, no_costwarden_env):
    policies = shipped_aws_policies()
    assert Counter(p.policy.resource for p in policies)["aws.ec2"] == 3  # the case the issue counted

    result = sweep(aws, tmp_path / "state", policies)

    assert result.errors == []
    calls = {k.split(".", 1)[1]: v for k, v in result.api_calls.items()}
    assert calls == dict(Counter(aws.calls))  # counted as the server received them
    assert calls["GetCallerIdentity"] == 1
    for operation in ("DescribeInstances", "ListEndpoints", "DescribeVolumes", "DescribeAddresses",
                      "DescribeSnapshots"):
        assert calls[operation] == len(REGIONS), operation
    # One GetMetricData a region for the three EC2 policies (the instances fit one call), one for the
    # two endpoint policies in the region that has an endpoint: not one per policy.
    assert calls["GetMetricData"] == len(REGIONS) + 1
    assert {f.policy for f in result.findings} >= {"idle-gpu-instances", "zombie-endpoints",
                                                   "unattached-ebs-volumes", "orphaned-ebs-snapshots"}


@pytest.mark.parametrize("policy_set", ["shipped", "mixed-windows"])
def test_a_shared_read_finds_what_each_policy_finds_alone(aws, estate, tmp_path, no_costwarden_env, policy_set):
    if policy_set == "shipped":
        policies = shipped_aws_policies()
    else:
        f = tmp_path / "mixed.yml"
        f.write_text(MIXED_WINDOWS)
        policies = load_policy_file(f)

    together = sweep(aws, tmp_path / "together", policies)
    alone = [sweep(aws, tmp_path / p.name, [p]) for p in policies]

    assert found(together) == sorted(x for r in alone for x in found(r))
    assert together.findings  # the comparison is not between two empty lists
    key = lambda x: (x["policy"], x["resource_id"], x["detector"], x["coverage"])  # noqa: E731
    assert sorted(map(key, together.insufficient)) == sorted(key(x) for r in alone for x in r.insufficient)
    assert together.errors == [] and all(r.errors == [] for r in alone)


def test_one_reader_per_key_the_others_wait_for_its_answer():
    inventory = Inventory()
    started = threading.Event()
    reads: list[str] = []

    def slow_read() -> list[str]:
        started.set()
        reads.append("read")
        time.sleep(0.05)
        return ["vol-1"]

    answers: list[list[str]] = []
    threads = [threading.Thread(target=lambda: answers.append(inventory.once(("vols", "r"), slow_read)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["read"] and answers == [["vol-1"]] * 8 and inventory.reads == 1
    assert inventory.once(("vols", "other-region"), lambda: ["vol-2"]) == ["vol-2"]  # another key, another read


def test_a_failed_read_is_not_kept():
    inventory = Inventory()

    def broken() -> str:
        raise RuntimeError("throttled")

    with pytest.raises(RuntimeError):
        inventory.once("identity", broken)
    assert inventory.once("identity", lambda: "123456789012") == "123456789012"
    assert Inventory().once("identity", lambda: "another sweep reads again") == "another sweep reads again"
