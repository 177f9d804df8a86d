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


def test_report_table_money_has_currency_and_sensible_rounding_headers_whole():
    from io import StringIO

    from rich.console import Console

    from costwarden.agent.cli.report import cell, label, render

    assert cell({"cost_usd": 266.61603}, "cost_usd") == "$266.62"
    assert cell({"per_success_usd": 0.000492117}, "per_success_usd") == "$0.0004921"  # four significant digits
    assert cell({"cost": -250.0, "currency": "EUR"}, "cost") == "-250.00 EUR"
    assert cell({"unpriced_requests": 280}, "unpriced_requests") == "280"
    assert cell({"difference_pct": 3.85}, "difference_pct") == "+3.85%"
    assert label("per_1m_tokens_usd") == "per 1M tokens"
    doc = {"cost_column": "EffectiveCost", "warnings": [],
           "usage": {"window_days": 14, "by_feature": [{"key": "a-very-long-feature-name-that-wraps", "requests": 5,
                                                        "tokens": 10, "cost_usd": 266.61603, "per_1m_tokens_usd": 2.9,
                                                        "per_1k_requests_usd": 47.6, "per_success_usd": 0.0492,
                                                        "unpriced_requests": 0}],
                     "by_model": [], "tier_margins": [], "features_costing_more_than_the_tier_pays": []}}
    out = StringIO()
    render(doc, Console(file=out, width=100, force_terminal=False))
    text = out.getvalue()
    assert "266.61603" not in text and "$266.62" in text
    for header in ("per 1M tokens", "per 1k requests", "per success", "unpriced requests"):
        assert header in text  # not cut to "per_1k_reques…"
