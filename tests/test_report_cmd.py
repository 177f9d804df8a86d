"""`costwarden report --demo -f json`: unit costs, the unlimited feature, reconciliation, anomalies."""

from __future__ import annotations

import json
import os

from costwarden.agent.cli.main import main


def test_report_json_on_the_demo_data(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("COSTWARDEN_")]:
        monkeypatch.delenv(k)
    assert main(["report", "--demo", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    features = {u["key"]: u for u in doc["usage"]["by_feature"]}
    assert features["helpdesk"]["per_1k_requests_usd"] > 0 and features["triage"]["unpriced_requests"] == 280
    assert features["triage"]["cost_usd"] == 0 and features["triage"]["per_1k_requests_usd"] is None
    over = doc["usage"]["features_costing_more_than_the_tier_pays"]
    assert [(o["feature"], o["tier"]) for o in over] == [("agent-chat", "starter")]
    rec = {r["provider"]: r for r in doc["reconciliation"]}
    assert 3.8 < rec["openai"]["difference_pct"] < 3.9 and rec["anthropic"]["billed_usd"] is None
    assert {a["resource_id"] for a in doc["anomalies"]} >= {"AWS/Amazon CloudWatch", "summarize"}
    assert any("acme-internal-llm" in w for w in doc["warnings"])


def test_report_without_billing_config_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("COSTWARDEN_")]:
        monkeypatch.delenv(k)
    assert main(["report"]) == 2
    assert capsys.readouterr().err.strip().startswith("costwarden: error: nothing to report")
