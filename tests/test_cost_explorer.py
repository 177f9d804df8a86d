"""Cost Explorer as the billing source when no FOCUS export is configured: realistic
GetCostAndUsage responses queued on the test moto server (moto's CE answers nothing otherwise),
swept by the unchanged spend-anomaly and budget detectors, through real boto3."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

import costwarden.tools.aws.session as session_mod
from costwarden.agent.config import AwsSettings, ConfigError, Settings, load_settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies
from tests.fakes.moto_server import mutating
from costwarden.tools.aws.cost_explorer import CostCell, CostExplorer, parse_page, plan_groupings
from costwarden.tools.aws.settings import CostExplorerSettings
from costwarden.tools.billing.collect import BillingInputs, collect_focus, usage_type_drivers
from costwarden.tools.billing.settings import BillingSettings, BudgetSpec
from costwarden.tools.collectors import CollectPlan, CollectReport, Scope

NOW = datetime(2025, 3, 20, 9, tzinfo=timezone.utc)
FIRST, END = date(2025, 2, 13), date(2025, 3, 20)  # lookback_days 35 before NOW; End is exclusive
SPIKE = date(2025, 3, 19)
RESEARCH, WEB = "111111111111", "222222222222"
CW, EC2 = "AmazonCloudWatch", "Amazon Elastic Compute Cloud - Compute"


def _days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def ce_page(days: list[date], groups: Callable[[date], list[tuple[list[str], str]]], *,
            metric: str = "AmortizedCost", token: str | None = None,
            accounts: dict[str, str] | None = None) -> dict[str, Any]:
    """One GetCostAndUsage response as AWS sends it: a ResultsByTime entry per day, grouped cells."""
    page: dict[str, Any] = {
        "GroupDefinitions": [],
        "ResultsByTime": [{"TimePeriod": {"Start": d.isoformat(), "End": (d + timedelta(days=1)).isoformat()},
                           "Total": {}, "Estimated": d == END - timedelta(days=1),
                           "Groups": [{"Keys": keys, "Metrics": {metric: {"Amount": amount, "Unit": "USD"}}}
                                      for keys, amount in groups(d)]} for d in days],
        "DimensionValueAttributes": [{"Value": a, "Attributes": {"description": n}}
                                     for a, n in (accounts or {}).items()],
    }
    if token:
        page["NextPageToken"] = token
    return page


def _noise(seed: str, day: date, base: float, spread: float) -> str:
    rnd = random.Random(f"{seed}{day}")
    return f"{base + rnd.uniform(-spread, spread):.10f}"


def account_service(d: date) -> list[tuple[list[str], str]]:
    """CloudWatch in the research account spends ~$30 a day and $240 on SPIKE; EC2 stays flat."""
    cw = "240.0000000001" if d == SPIKE else _noise("cw", d, 30, 2)
    return [([RESEARCH, CW], cw), ([RESEARCH, EC2], _noise("ec2a", d, 500, 15)),
            ([WEB, EC2], _noise("ec2b", d, 800, 20))]


def service_usage(d: date) -> list[tuple[list[str], str]]:
    logs = "200.0000000000" if d == SPIKE else _noise("logs", d, 6, 0.5)
    return [([CW, "USE1-DataProcessing-Bytes"], logs), ([CW, "USE1-CW:MetricMonitorUsage"], _noise("m", d, 24, 1)),
            ([EC2, "USE1-BoxUsage:p4d.24xlarge"], _noise("box", d, 1300, 30))]


def queue(endpoint: str, *results: dict[str, Any]) -> None:
    """moto answers each new GetCostAndUsage request body with the next queued response."""
    req = urllib.request.Request(endpoint + "/moto-api/static/ce/cost-and-usage-results", method="POST",
                                 data=json.dumps({"results": list(results)}).encode(),
                                 headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(req, timeout=10).status == 201


def queue_anomaly_estate(endpoint: str) -> None:
    """The requests in the order the collector makes them: two pages by account x service, then usage types."""
    days = _days(FIRST, END)
    queue(endpoint,
          ce_page(days[:20], account_service, token="page-2", accounts={RESEARCH: "research", WEB: "web"}),
          ce_page(days[20:], account_service, accounts={RESEARCH: "research", WEB: "web"}),
          ce_page(days, service_usage))


def _policies(*names: str):
    return [lp for lp in load_policies([]) if lp.name in names]


def _settings(state_dir, ce: Any = True, **billing: Any) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"], cost_explorer=ce),
                    billing=BillingSettings(**billing))


def test_a_spike_in_cost_explorer_data_is_a_spend_anomaly_and_flat_services_are_not(
        aws, state_dir, no_costwarden_env):
    queue_anomaly_estate(aws.endpoint)
    result = run_sweep(_settings(state_dir), _policies("billing-anomalies"), dry_run=True, now=NOW)

    assert result.errors == [] and result.status == "done"
    assert result.inventoried == 3  # research/CloudWatch, research/EC2, web/EC2
    [f] = result.findings  # the flat EC2 series in both accounts stay quiet
    assert (f.detector, f.resource_type, f.account, f.resource_id) == (
        "spend-anomaly", "billing.focus", RESEARCH, f"AWS/{CW}")
    assert f.evidence["day"] == SPIKE.isoformat() and f.evidence["spend_usd"] == 240.0
    assert 28 <= f.evidence["expected_usd"] <= 32 and f.evidence["currency"] == "USD"
    assert f.evidence["history_days"] == 28
    calls = aws.calls
    assert calls.count("GetCostAndUsage") == 3  # two pages followed through NextPageToken, one usage-type cut
    assert mutating(calls) == []


def test_cost_explorer_observations_keep_decimals_currency_names_and_usage_types(aws, no_costwarden_env):
    queue_anomaly_estate(aws.endpoint)
    inputs = BillingInputs(BillingSettings(), CostExplorerSettings(enabled=True))
    report = CollectReport()
    plan = CollectPlan(wants=lambda _r: True, metrics=[], lookback_hours=0, now=NOW)
    obs = {(o.resource.account, o.resource.resource_id): o for o in collect_focus(inputs, Scope([]), plan, report)}

    assert report.errors == []
    cw = obs[(RESEARCH, f"AWS/{CW}")]
    assert cw.resource.attrs["source"] == "cost-explorer" and cw.resource.attrs["account_name"] == "research"
    assert cw.resource.attrs["billing_account"] == "123456789012"  # the account Cost Explorer answered for
    assert cw.resource.attrs["usage_types"][0]["usage_type"] == "USE1-DataProcessing-Bytes"  # the spike's driver
    assert len(cw.series["cost_usd"].points) == 35  # both pages joined, one point a day

    # exact decimals from the API's strings, summed across pages, with the unit kept as currency
    ce = CostExplorer(session_mod.AwsClients(dry_run=True), cost_column="EffectiveCost")
    queue_anomaly_estate(aws.endpoint)  # a fresh object makes its requests again
    rows = ce.daily_spend(["sub_account"], FIRST, NOW, filters={"service": CW})
    spike = next(r for r in rows if r.day == SPIKE)
    assert spike.cost == Decimal("240.0000000001") and spike.currency == "USD"


def test_budgets_are_measured_on_cost_explorer_by_cost_allocation_tag(aws, state_dir, no_costwarden_env):
    def by_team(d: date) -> list[tuple[list[str], str]]:
        return [(["team$research"], "150.00"), (["team$web"], "100.00"), (["team$"], "40.00")]

    queue(aws.endpoint, ce_page(_days(date(2025, 3, 1), END), by_team))
    budgets = [BudgetSpec(name="research-team", scope="team", value="research", monthly_usd=3000),
               BudgetSpec(name="web-team", scope="team", value="web", monthly_usd=10000)]
    result = run_sweep(_settings(state_dir, budgets=budgets), _policies("budgets"), dry_run=True, now=NOW)

    assert result.errors == []
    [f] = result.findings  # $150/day forecasts $4,650 against $3,000; web's $3,100 stays under $10,000
    assert (f.detector, f.resource_id) == ("budget", "research-team")
    assert f.evidence["month_to_date_usd"] == 19 * 150.0 and f.evidence["forecast_usd"] == 31 * 150.0
    assert aws.calls.count("GetCostAndUsage") == 1  # both budgets' scopes from one TAG:team request


@pytest.mark.parametrize("code", ["AccessDeniedException", "DataUnavailableException"])
def test_a_cost_explorer_error_is_one_report_line_not_a_traceback(aws, state_dir, no_costwarden_env, monkeypatch,
                                                                 code):
    real = boto3.Session

    def refuse(model: Any, **_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "Cost Explorer says no"}}, model.name)

    def make(*args: Any, **kwargs: Any) -> Any:
        s = real(*args, **kwargs)
        s.events.register("before-call.cost-explorer.GetCostAndUsage", refuse)  # the service id, not "ce"
        return s

    monkeypatch.setattr(boto3, "Session", make)
    result = run_sweep(_settings(state_dir), _policies("billing-anomalies"), dry_run=True, now=NOW)
    assert result.status == "partial" and result.findings == []
    assert result.errors == [f"cost explorer: GetCostAndUsage daily by LINKED_ACCOUNT x SERVICE "
                             f"2025-02-13..2025-03-20: {code}: Cost Explorer says no"]


def test_cost_explorer_is_not_called_when_off_or_when_a_focus_export_is_configured(aws, state_dir, tmp_path,
                                                                                  no_costwarden_env):
    queue_anomaly_estate(aws.endpoint)
    off = run_sweep(_settings(state_dir, ce=False), _policies("billing-anomalies", "budgets"), dry_run=True, now=NOW)
    assert (off.findings, off.errors, off.inventoried) == ([], [], 0)
    export = tmp_path / "focus.csv"
    export.write_text("BillingAccountId,SubAccountId,ProviderName,ServiceName,ChargeCategory,BillingCurrency,"
                      "ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost\n"
                      "1,1,AWS,S3,Usage,USD,2025-03-18T00:00:00Z,2025-03-19T00:00:00Z,1,1\n")
    focus = run_sweep(_settings(state_dir, focus_paths=[str(export)]), _policies("billing-anomalies"),
                      dry_run=True, now=NOW)
    assert focus.errors == [] and focus.inventoried == 1
    assert "GetCostAndUsage" not in aws.calls


def test_a_sweeps_api_calls_count_its_cost_explorer_requests(aws, state_dir, tmp_path, no_costwarden_env):
    queue_anomaly_estate(aws.endpoint)
    budgets = [BudgetSpec(name="research", scope="account", value=RESEARCH, monthly_usd=100000)]
    result = run_sweep(_settings(state_dir, budgets=budgets), _policies("billing-anomalies", "budgets"),
                       dry_run=True, now=NOW)
    assert result.errors == [] and len(result.findings) == 1
    # two pages and the usage-type cut for the anomalies, one account x service request for the budget,
    # the same requests the server saw, counted once each in the sweep's own log
    assert result.api_calls["ce.GetCostAndUsage"] == aws.calls.count("GetCostAndUsage") == 4
    assert result.refused_calls == {}

    export = tmp_path / "focus.csv"  # an export configured: Cost Explorer is not asked, nor counted
    export.write_text("BillingAccountId,SubAccountId,ProviderName,ServiceName,ChargeCategory,BillingCurrency,"
                      "ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost\n"
                      "1,1,AWS,S3,Usage,USD,2025-03-18T00:00:00Z,2025-03-19T00:00:00Z,1,1\n")
    focus = run_sweep(_settings(state_dir, focus_paths=[str(export)]), _policies("billing-anomalies"),
                      dry_run=True, now=NOW)
    assert focus.errors == [] and "ce.GetCostAndUsage" not in focus.api_calls


def test_cost_explorer_stays_read_only_in_a_live_sweep_and_its_refusals_are_counted(aws, state_dir, monkeypatch,
                                                                                    no_costwarden_env):
    """A live (dry_run=False) sweep may act, but Cost Explorer's clients are dry-run whatever the sweep:
    a mutating CE call made by mistake is refused before it leaves the process, and the run reports it."""
    from costwarden.tools.aws.cost_explorer import CE_REGION
    from costwarden.tools.errors import DryRunViolation

    real = CostExplorer.daily_spend

    def careless(self: CostExplorer, *args: Any, **kwargs: Any) -> Any:
        with pytest.raises(DryRunViolation):
            self.clients.client("ce", CE_REGION).create_anomaly_monitor(
                AnomalyMonitor={"MonitorName": "m", "MonitorType": "DIMENSIONAL", "MonitorDimension": "SERVICE"})
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CostExplorer, "daily_spend", careless)
    queue_anomaly_estate(aws.endpoint)
    result = run_sweep(_settings(state_dir), _policies("billing-anomalies"), dry_run=False, now=NOW)
    assert result.errors == [] and len(result.findings) == 1
    assert set(result.refused_calls) == {"ce.CreateAnomalyMonitor"}
    assert result.api_calls["ce.GetCostAndUsage"] == 3 and "ce.CreateAnomalyMonitor" not in result.api_calls
    assert mutating(aws.calls) == []


def test_plan_groupings_packs_key_sets_into_two_key_requests():
    acct, svc, ut, team = "DIMENSION:LINKED_ACCOUNT", "DIMENSION:SERVICE", "DIMENSION:USAGE_TYPE", "TAG:team"
    assert plan_groupings([{acct, svc}, {svc}, {acct}, set()]) == [(acct, svc)]
    assert plan_groupings([{svc}, {team}, set()]) == [(svc, team)]
    assert plan_groupings([{acct, svc}, {svc, ut}, {team}]) == [(acct, svc), (svc, ut), (team,)]
    assert plan_groupings([]) == [()]
    with pytest.raises(ValueError, match="at most 2"):
        plan_groupings([{acct, svc, ut}])


def test_parse_page_reads_tags_totals_and_estimates():
    page = ce_page([SPIKE], lambda d: [(["team$research"], "1.5"), (["team$"], "-0.25")])
    cells = parse_page(page, ["TAG:team"], "AmortizedCost")
    assert cells == [CostCell(SPIKE, ("research",), Decimal("1.5"), "USD", True),  # the latest day: estimated
                     CostCell(SPIKE, (None,), Decimal("-0.25"), "USD", True)]  # untagged; a credit stays negative
    total = {"ResultsByTime": [{"TimePeriod": {"Start": "2025-03-19", "End": "2025-03-20"}, "Estimated": True,
                                "Total": {"UnblendedCost": {"Amount": "12.5", "Unit": "EUR"}}, "Groups": []}]}
    assert parse_page(total, [], "UnblendedCost") == [CostCell(SPIKE, (), Decimal("12.5"), "EUR", True)]


def test_usage_type_drivers_rank_the_rise_over_the_median():
    from costwarden.tools.billing.focus import SpendRow

    rows = [SpendRow({"service": "S", "usage_type": u}, date(2025, 3, d), Decimal(c), "USD")
            for u, d, c in [("a", 17, "10"), ("a", 18, "10"), ("a", 19, "11"),
                            ("b", 17, "1"), ("b", 18, "1"), ("b", 19, "9")]]
    [first, second] = usage_type_drivers(rows)["S"]
    assert (first["usage_type"], first["spend"], first["median"]) == ("b", 9.0, 1.0)
    assert second["usage_type"] == "a"


def test_cost_explorer_config_shorthand_and_errors(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("aws:\n  cost_explorer: true\n")
    assert load_settings(cfg).aws.cost_explorer.enabled is True
    assert load_settings().aws.cost_explorer.enabled is False  # off by default: each request costs $0.01
    cfg.write_text("aws:\n  cost_explorer:\n    enabled: true\n    role_arn: payer\n")
    with pytest.raises(ConfigError, match="not an IAM role ARN") as exc:
        load_settings(cfg)
    assert exc.value.line == 4 and "\n" not in str(exc.value)
