"""Counted calls: an audit against moto counts every API call it sent, by service and operation,
exactly as the server received them; the runs row keeps the same list; /metrics adds them up
process-wide under `costwarden_cloud_api_calls_total{service,operation}`."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.agent.reports.output import render_json
from costwarden.agent.server.metrics import ProcessCounters, render
from costwarden.state.store import Store
from costwarden.tools.calls import by_operation
from tests.multi_account import ORG_ROLE, organization_estate

@pytest.fixture
def estate(aws, tmp_path: Path) -> list[Any]:
    """Two GPU instances and an address in the management account, an address in a member account
    reached through a role: STS, Organizations, EC2 and CloudWatch calls, over several protocols."""
    policies = organization_estate(aws.endpoint, tmp_path, ("llm-finetune-01", "inference-h100"))["policies"]
    aws.clear_calls()
    return policies


def _metric_calls(store: Store) -> dict[tuple[str, str], float]:
    text = render(store, ProcessCounters(), {"leader": True, "dry_run": True}).decode()
    pattern = r'costwarden_cloud_api_calls_total\{operation="([^"]+)",service="([^"]+)"\} ([0-9.e+]+)'
    return {(service, op): float(n) for op, service, n in re.findall(pattern, text)}


def test_an_audit_counts_every_call_the_server_received(aws, estate, state_dir, no_costwarden_env):
    settings = Settings(state_dir=state_dir, aws=AwsSettings(
        regions=["us-east-1"], endpoint_url=aws.endpoint,
        organization={"role_name": ORG_ROLE, "include_management": True}))
    store = Store(settings.db_url)
    before = _metric_calls(store)

    doc = json.loads(render_json(run_sweep(settings, estate, dry_run=True)))

    assert doc["errors"] == []
    received = Counter(aws.calls)
    counted = doc["api_calls"]
    assert {c["operation"]: c["count"] for c in counted} == dict(received)  # each operation, each request
    assert {c["operation"] for c in counted} >= {"GetCallerIdentity", "AssumeRole", "ListAccounts",
                                                  "DescribeInstances", "DescribeAddresses", "GetMetricData"}
    assert sum(len(aws.requests_for(op)) for op in received) == sum(c["count"] for c in counted)
    services = {c["operation"]: c["service"] for c in counted}
    assert (services["AssumeRole"], services["ListAccounts"], services["GetMetricData"]) == (
        "sts", "organizations", "cloudwatch")
    assert counted == sorted(counted, key=lambda c: (c["service"], c["operation"]))
    assert doc["retries"] == []  # nothing throttled: no resends

    run = store.get_run(doc["run_id"])
    assert run is not None and run.api_calls == counted  # the runs table keeps the same list

    after = _metric_calls(store)
    store.close()
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
        (c["service"], c["operation"]): float(c["count"]) for c in counted}


def test_by_operation_sorts_and_splits_names():
    counts = {"ec2.DescribeInstances": 3, "compute.GET instances": 2, "cloudwatch.GetMetricData": 0,
              "ce.GetCostAndUsage": 1}
    assert by_operation(counts) == [
        {"service": "ce", "operation": "GetCostAndUsage", "count": 1},
        {"service": "compute", "operation": "GET instances", "count": 2},
        {"service": "ec2", "operation": "DescribeInstances", "count": 3},
    ]
