"""Twenty audits through a proxy that throttles half of all AWS requests, each answered with its
protocol's real throttling error (EC2 query XML, STS XML, CloudWatch's awsJson with the query
error header, Organizations JSON): every audit finds what an unthrottled audit finds, and every
retry is counted by service and API operation, in the audit JSON and in /metrics.

The estate covers every protocol of a sweep: an organization (DescribeOrganization, ListAccounts),
the management account swept with its own credentials (GetCallerIdentity) and a member account
through a role (AssumeRole), EC2 inventory and addresses, CloudWatch GetMetricData.
"""

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
from tests.fakes.moto_server import mutating
from tests.multi_account import ORG_ROLE, organization_estate
from tests.throttling_proxy import ThrottlingProxy, cbor_map, fast_backoff, throttling_response

AUDITS = 20
# At a 50% throttle rate a call fails only if all its sends are throttled: 0.5**20 (one in a million)
# with 20 attempts; at 5 it is 1 in 32, and an audit of ~20 calls would often lose one.
ATTEMPTS = 20


@pytest.fixture
def estate(aws, tmp_path: Path) -> dict[str, Any]:
    """The management account holds three GPU instances (two idle) and an address; one member, one address."""
    out = organization_estate(aws.endpoint, tmp_path, ("llm-finetune-01", "llm-finetune-02", "inference-h100"))
    aws.clear_calls()
    return out


def _audit(state_dir: Path, endpoint: str, policies: list[Any]) -> dict[str, Any]:
    """One dry-run sweep rendered as `costwarden audit --format json` renders it."""
    aws = AwsSettings(regions=["us-east-1"], endpoint_url=endpoint,
                      organization={"role_name": ORG_ROLE, "include_management": True},
                      retries={"mode": "standard", "max_attempts": ATTEMPTS})
    return json.loads(render_json(run_sweep(Settings(state_dir=state_dir, aws=aws), policies, dry_run=True)))


def _findings(doc: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(f["policy"], f["account"], f["region"], f["resource_id"], f["monthly_waste_usd"]) for f in doc["findings"]}


def _metric_retries(state_dir: Path) -> dict[tuple[str, str], float]:
    store = Store(Settings(state_dir=state_dir).db_url)
    try:
        text = render(store, ProcessCounters(), {"leader": True, "dry_run": True}).decode()
    finally:
        store.close()
    pattern = r'costwarden_cloud_retries_total\{operation="([^"]+)",service="([^"]+)"\} ([0-9.e+]+)'
    return {(service, op): float(n) for op, service, n in re.findall(pattern, text)}


def test_twenty_throttled_audits_find_the_same_and_count_every_retry(aws, estate, state_dir, monkeypatch,
                                                                       no_costwarden_env):
    fast_backoff(monkeypatch)
    baseline = _audit(state_dir, aws.endpoint, estate["policies"])
    assert baseline["errors"] == [] and baseline["retries"] == []
    expected = _findings(baseline)
    assert {f[3] for f in expected} == {estate["ids"]["llm-finetune-01"], estate["ids"]["llm-finetune-02"],
                                        *estate["eips"]}
    unthrottled_requests = len(aws.calls)

    metrics_before = _metric_retries(state_dir)
    proxy = ThrottlingProxy(aws.endpoint, rate=0.5).start()
    in_json: Counter[tuple[str, str]] = Counter()
    throttled: Counter[str] = Counter()
    try:
        for seed in range(AUDITS):
            proxy.rng.seed(seed)
            proxy.throttled.clear()
            start = len(aws.calls)
            doc = _audit(state_dir, proxy.endpoint, estate["policies"])
            # each call counted once however often it was throttled: what got through to the server
            reached = Counter(aws.calls[start:])
            assert Counter({c["operation"]: c["count"] for c in doc["api_calls"]}) == reached, f"audit {seed}"
            assert doc["errors"] == [], f"audit {seed}: {doc['errors']}"
            assert _findings(doc) == expected, f"audit {seed}"
            retries = {(r["service"], r["operation"]): r["count"] for r in doc["retries"]}
            # every throttled answer was followed by exactly one resend, counted under its own API operation
            by_op = Counter({op: n for (_, op), n in proxy.throttled.items()})
            assert Counter({op: n for (_, op), n in retries.items()}) == by_op, f"audit {seed}"
            in_json.update(retries)
            throttled.update(by_op)
    finally:
        proxy.stop()

    sent = len(aws.calls) - unthrottled_requests + sum(throttled.values())
    assert sent > AUDITS * unthrottled_requests  # retries cost requests: about twice as many at a 50% rate
    for key in [("sts", "GetCallerIdentity"), ("sts", "AssumeRole"), ("ec2", "DescribeInstances"),
                ("ec2", "DescribeAddresses"), ("cloudwatch", "GetMetricData"), ("organizations", "ListAccounts")]:
        assert in_json[key] > 0, key  # each protocol's throttling error was recognised and retried
    metrics_after = _metric_retries(state_dir)
    assert {k: metrics_after.get(k, 0) - metrics_before.get(k, 0) for k in in_json} == {
        k: float(n) for k, n in in_json.items()}
    assert mutating(aws.calls) == []


def test_a_cbor_throttling_answer_parses_as_throttling():
    """Should botocore switch CloudWatch to Smithy RPC v2 CBOR (its model's first protocol), the
    proxy's CBOR answer is the same throttling error."""
    from botocore.parsers import create_parser

    status, headers, body = throttling_response("monitoring", {"smithy-protocol": "rpc-v2-cbor"})
    parsed = create_parser("smithy-rpc-v2-cbor").parse(
        {"status_code": status, "headers": headers, "body": body}, None)
    assert parsed["Error"]["Code"] == "Throttling"
    assert cbor_map({"a": "b"}) == b"\xa1\x61a\x61b"
