"""SageMaker endpoints against moto: inventory with configs, batched Invocations metrics per
variant, the zombie-endpoint policy in dry-run (zero mutating calls) and the guarded delete."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.engine.context import Providers
from costwarden.agent.engine.execute import execute_action
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.store import Store
from tests.fakes.moto_server import mutating
from costwarden.tools.aws.session import AwsClients
from costwarden.tools.errors import DryRunViolation
from costwarden.tools.registry import get_tool

POLICY = """
policies:
  - name: zombie-endpoints
    resource: aws.sagemaker-endpoint
    mode: approve
    filters:
      - type: zombie-endpoint
        lookback_days: 7
        min_age_days: 0
    actions:
      - delete-endpoint
"""
ROLE = "arn:aws:iam::123456789012:role/sagemaker"


@pytest.fixture
def sagemaker_estate(aws, monkeypatch) -> dict[str, str]:
    """Three endpoints: a zombie on current GPU types (two variants), a busy one, a protected zombie."""
    from moto.sagemaker.models import FakeEndpointConfig

    # moto 5.2 knows only older ml. types; the server runs in this process, so a patch reaches it
    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", lambda self, t: None)
    sm = boto3.client("sagemaker", region_name="us-east-1")
    cw = boto3.client("cloudwatch", region_name="us-east-1", config=Config(disable_request_compression=True))

    def make(name: str, variants: list[tuple[str, str, int]], tags: dict[str, str]) -> None:
        sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img:1"})
        sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[
            {"VariantName": v, "ModelName": f"{name}-model", "InitialInstanceCount": n, "InstanceType": t}
            for v, t, n in variants])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config",
                           Tags=[{"Key": k, "Value": val} for k, val in tags.items()])

    make("chatbot-v1", [("AllTraffic", "ml.g5.xlarge", 2), ("Canary", "ml.p4d.24xlarge", 1)], {"env": "dev"})
    make("search-rerank", [("AllTraffic", "ml.g4dn.xlarge", 1)], {"env": "prod"})
    make("demo-keep", [("AllTraffic", "ml.g5.xlarge", 1)], {"costwarden:protect": "true"})
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[
        {"MetricName": "Invocations", "Timestamp": now - timedelta(hours=h), "Value": 120.0, "Unit": "None",
         "Dimensions": [{"Name": "EndpointName", "Value": "search-rerank"},
                        {"Name": "VariantName", "Value": "AllTraffic"}]} for h in range(1, 48)])
    aws.clear_calls()
    return {"zombie": "chatbot-v1", "busy": "search-rerank", "protected": "demo-keep"}


def _settings(state_dir: Path, **kw) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"]), **kw)


def _policies(tmp_path: Path):
    f = tmp_path / "zombies.yml"
    f.write_text(POLICY)
    return load_policy_file(f)


def test_inventory_reads_configs_and_instance_counts(aws, sagemaker_estate):
    from costwarden.tools.aws.sagemaker import list_endpoints

    found = {r.resource_id: r for r in list_endpoints(AwsClients(dry_run=True), "123456789012", "us-east-1",
                                                      page_size=1)}  # page size 1: pagination is exercised
    assert set(found) == set(sagemaker_estate.values())
    z = found["chatbot-v1"]
    assert z.kind == "ml.g5.xlarge" and z.state == "InService" and z.tags == {"env": "dev"}
    assert [(v["name"], v["instance_type"], v["instance_count"]) for v in z.attrs["variants"]] == [
        ("AllTraffic", "ml.g5.xlarge", 2), ("Canary", "ml.p4d.24xlarge", 1)]
    assert z.attrs["endpoint_config_name"] == "chatbot-v1-config"
    assert aws.calls.count("ListEndpoints") == 3


def test_dry_run_finds_the_zombie_with_batched_metrics_and_zero_mutating_calls(aws, sagemaker_estate, state_dir,
                                                                              tmp_path, no_costwarden_env):
    result = run_sweep(_settings(state_dir), _policies(tmp_path), dry_run=True)

    assert result.errors == [] and result.inventoried == 3
    assert [f.resource_id for f in result.findings] == ["chatbot-v1"]
    f = result.findings[0]
    assert f.monthly_waste_usd == Decimal("29567.92")  # (1.408 x 2 + 37.688) x 730
    assert f.evidence["invocations_total"] == 0 and "SageMaker" in f.evidence["price_source"]
    assert "served 0 invocations" in f.rationale
    [a] = result.actions
    assert (a.tool, a.decision, a.status, a.destructive) == (
        "aws.sagemaker-endpoint.delete_endpoint", "needs_approval", "dry_run", True)

    calls = aws.calls
    assert mutating(calls) == []
    assert calls.count("GetMetricData") == 1  # every variant of both candidates in one batched call
    assert result.refused_calls == {}
    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]} == set(sagemaker_estate.values())


def test_busy_variant_metrics_are_read_per_variant(aws, sagemaker_estate):
    from costwarden.tools.aws.cloudwatch import SAGEMAKER_ENDPOINT_METRICS, fetch_series
    from costwarden.tools.collectors import window
    from costwarden.tools.aws.sagemaker import list_endpoints
    from costwarden.state.domain import MetricRequest

    clients = AwsClients(dry_run=True)
    endpoints = list(list_endpoints(clients, "123456789012", "us-east-1"))
    start, end = window(datetime.now(timezone.utc) + timedelta(hours=1), 7 * 24)
    series = fetch_series(clients, "us-east-1", endpoints, [MetricRequest("invocations", "Sum")], start=start,
                          end=end, catalog=SAGEMAKER_ENDPOINT_METRICS)
    assert sum(series["search-rerank"]["invocations"].values) == pytest.approx(120.0 * 47)
    assert "chatbot-v1" not in series or sum(series["chatbot-v1"]["invocations"].values) == 0


def test_approved_delete_keeps_the_config_and_records_how_to_recreate(aws, sagemaker_estate, state_dir, tmp_path,
                                                                     no_costwarden_env):
    settings = _settings(state_dir, dry_run=False)
    result = run_sweep(settings, _policies(tmp_path), dry_run=False)
    [a] = result.actions
    assert (a.decision, a.status) == ("needs_approval", "awaiting_approval")
    assert "DeleteEndpoint" not in aws.calls  # destructive: nothing happens before a human approves

    store = Store(settings.db_url)
    store.set_action_status(a.id, "approved")
    a.status = "approved"
    status = execute_action(store, Providers(settings, dry_run=False), a, run_id=result.run_id,
                            policy_hash="h")
    assert status == "done"
    row = store.get_action(a.id)
    before, after = row.before_state, row.after_state
    assert before["state"] == "InService"
    assert before["endpoint_config"]["ProductionVariants"][0]["InstanceType"] == "ml.g5.xlarge"
    assert before["recreate"] == {"EndpointName": "chatbot-v1", "EndpointConfigName": "chatbot-v1-config",
                                  "Tags": [{"Key": "env", "Value": "dev"}]}
    assert after["state"] == "deleted" and after["endpoint_config_kept"] is True

    sm = boto3.client("sagemaker", region_name="us-east-1")
    assert "chatbot-v1" not in {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    sm.describe_endpoint_config(EndpointConfigName="chatbot-v1-config")  # kept
    assert mutating(aws.calls).count("DeleteEndpoint") == 1
    # recreating from the recorded before-state works
    sm.create_endpoint(**before["recreate"])
    # and running the tool again on a gone endpoint is a no-op success
    spec = get_tool(a.tool)
    sm.delete_endpoint(EndpointName="chatbot-v1")
    again = spec.run(AwsClients(dry_run=False), **a.args)
    assert again.ok and spec.is_done(again.after)


def test_dry_run_clients_refuse_delete_endpoint(aws, sagemaker_estate):
    spec = get_tool("aws.sagemaker-endpoint.delete_endpoint")
    clients = AwsClients(dry_run=True)
    with pytest.raises(DryRunViolation, match="sagemaker.DeleteEndpoint"):
        spec.run(clients, account="123456789012", region="us-east-1", endpoint_name="chatbot-v1")
    assert mutating(aws.calls) == []
