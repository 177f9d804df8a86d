"""The CLI as a user runs it: the demo audit's JSON contract, and bad input ending in exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.agent.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "costwarden.agent.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def demo_json(tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("demo")
    proc = cli("audit", "--demo", "--format", "json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is one JSON document, progress goes to stderr
    assert (cwd / "state" / "costwarden.db").exists()
    return doc


def test_demo_json_follows_the_contract(demo_json):
    assert set(demo_json) >= {"run_id", "dry_run", "findings", "actions", "totals"}
    assert demo_json["dry_run"] is True
    for f in demo_json["findings"]:
        assert set(f) >= {"id", "policy", "detector", "provider", "account", "region", "resource_id",
                          "resource_type", "evidence", "monthly_waste_usd", "severity"}
    for a in demo_json["actions"]:
        assert set(a) >= {"id", "finding_id", "tool", "args", "decision", "status", "projected_monthly_savings_usd"}
        assert a["finding_id"] in {f["id"] for f in demo_json["findings"]}
    totals = demo_json["totals"]
    assert set(totals) >= {"monthly_waste_usd", "projected_monthly_savings_usd"}
    waste = sum(Decimal(str(f["monthly_waste_usd"])) for f in demo_json["findings"])
    assert Decimal(str(totals["monthly_waste_usd"])) == waste
    savings = sum(Decimal(str(a["projected_monthly_savings_usd"])) for a in demo_json["actions"])
    assert Decimal(str(totals["projected_monthly_savings_usd"])) == savings


def test_demo_finds_the_idle_p4ds_and_not_the_busy_or_protected(demo_json):
    names = {f["name"] for f in demo_json["findings"]}
    assert {"llm-finetune-01", "llm-finetune-02"} <= names
    assert "inference-h100" not in names and "notebook-alice" not in names
    p4d = [f for f in demo_json["findings"]
           if f["detector"] == "idle-gpu" and f["evidence"]["instance_type"] == "p4d.24xlarge"]
    assert len(p4d) == 2 and all(f["monthly_waste_usd"] == 16030.8 for f in p4d)
    assert all(a["status"] == "dry_run" for a in demo_json["actions"])


def test_demo_shows_training_hardware_serving_inference_and_off_hours_idling(demo_json):
    ec2 = [f for f in demo_json["findings"] if f["resource_type"] == "aws.ec2"]
    by_name = {(f["name"], f["detector"]): f for f in ec2}
    # the p4d serving a model at ~20%: a cheaper inference-class type that holds its peak GPU memory
    th = by_name[("chatbot-inference", "training-hardware-for-inference")]
    ev = th["evidence"]
    assert 5 <= ev["gpu_util_p95_pct"] and ev["gpu_util_avg_pct"] < 35  # working, so not idle-gpu's finding
    assert ev["gpu_memory_used_peak_gib"] is not None and ev["memory_basis"].startswith("peak")
    alt = ev["alternative"]
    assert alt["instance_type"].split(".")[0] in ("g6e", "inf2") and alt["gpu_memory_gib"] >= ev["required_gpu_memory_gib"]
    assert alt["gpu_memory_gib"] < ev["current"]["gpu_memory_gib"]  # the memory metric is what made it fit
    assert th["monthly_waste_usd"] == round((21.96 - alt["hourly_price_usd"]) * 730, 2)
    # the g5.12xlarge busy 08:00-20:00 UTC: a nightly stop/start schedule
    off = by_name[("vision-dev", "off-hours-idle")]
    rules = off["evidence"]["schedule"]["rules"]
    assert [(r["days"], r["stop_at"], r["start_at"]) for r in rules] == [("every day", "20:00", "08:00")]
    assert off["evidence"]["hours_per_week"] == 84 and off["monthly_waste_usd"] == round(84 * 5.672 * 52 / 12, 2)
    # report-only policies: no action, so projected savings stay the five stops
    assert not [a for a in demo_json["actions"] if a["finding_id"] in (th["id"], off["id"])]
    # nothing counted twice: one finding per EC2 instance; the idle, busy and protected ones get no new finding
    assert len({f["resource_id"] for f in ec2}) == len(ec2)
    assert {n for n, d in by_name if d != "idle-gpu"} == {"chatbot-inference", "vision-dev"}
    assert not {n for n, _ in by_name} & {"inference-h100", "notebook-alice", "web-1", "web-2", "web-3"}


def test_demo_shows_the_billing_and_token_scenarios(demo_json):
    found = {(f["detector"], f["resource_id"]) for f in demo_json["findings"]}
    assert {("oversized-model", "helpdesk"), ("spend-anomaly", "summarize"), ("cache-opportunity", "docs-search"),
            ("spend-anomaly", "AWS/Amazon CloudWatch")} <= found
    assert any("acme-internal-llm" in w for w in demo_json["warnings"])  # unpriced, never a silent $0


def test_demo_shows_aws_gcp_and_a_prometheus_scraped_cluster_in_one_report(demo_json):
    idle = {(f["provider"], f["resource_id"]) for f in demo_json["findings"] if f["detector"] == "idle-gpu"}
    assert {("gcp", "us-central1-a/llm-pretrain-a100x8"), ("gcp", "us-central1-b/vision-finetune"),
            ("k8s", "gke-inference-prod-a100-pool-7f3c")} <= idle
    assert not {r for _, r in idle} & {"us-central1-a/serving-l4-1", "europe-west4-a/h100-eval-reserved",
                                       "gke-inference-prod-a100-pool-9d21"}  # busy, protected, one busy GPU
    gcp_tools = {a["tool"] for a in demo_json["actions"] if a["tool"].startswith("gcp.")}
    assert gcp_tools == {"gcp.compute.stop_instance"}


def test_markdown_report_to_a_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("COSTWARDEN_")]:
        monkeypatch.delenv(k)
    assert main(["audit", "--demo", "-q", "--format", "markdown", "--output", "audit.md"]) == 0
    text = (tmp_path / "audit.md").read_text()
    assert text.startswith("# Costwarden audit")
    assert "llm-finetune-01" in text and "| **Total** |" in text and "DRY-RUN" in text
    assert "notebook-alice" not in text


def test_malformed_policy_is_one_line_exit_2_and_nothing_runs(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("policies:\n  - name: x\n    resource: aws.ec2\n    filters:\n      - type: idle-gpu\n"
                   "        gpu_util_threshold_pct: lots\n")
    proc = cli("audit", "--policy", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"costwarden: error: {bad}:6: field 'policies.0.filters.0.gpu_util_threshold_pct'")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()  # nothing ran, nothing was written


def test_malformed_config_is_one_line_exit_2(tmp_path):
    cfg = tmp_path / "costwarden.yml"
    cfg.write_text("dry_run: maybe\n")
    proc = cli("run", "--once", "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"costwarden: error: {cfg}:1: field 'dry_run': "
                                   "Input should be a valid boolean, unable to interpret input")
    assert not (tmp_path / "state").exists()


def test_policies_validate(tmp_path):
    import yaml

    pack = REPO / "policies" / "packs" / "default.yml"
    ok = cli("policies", "validate", str(pack), cwd=tmp_path)
    n = len(yaml.safe_load(pack.read_text())["policies"])
    assert ok.returncode == 0 and f"\n{n} policies valid" in ok.stderr and "idle-gpu-instances (aws.ec2" in ok.stderr
    missing = cli("policies", "validate", str(tmp_path / "missing.yml"), cwd=tmp_path)
    assert missing.returncode == 2 and "file not found" in missing.stderr


def test_schema_lists_the_vocabulary(capsys):
    assert main(["policies", "schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "idle-gpu" in doc["filters"] and "stop" in doc["actions"]
    assert "gpu_util_threshold_pct" in doc["filters"]["idle-gpu"]["params"]["properties"]


def test_unknown_option_is_a_usage_error():
    assert main(["audit", "--formatt", "json"]) == 2


def test_audit_with_unreachable_cloud_reports_and_exits_1(tmp_path):
    env_file = tmp_path / "c.yml"
    env_file.write_text("aws:\n  regions: [us-east-1]\n  endpoint_url: http://127.0.0.1:9\n")
    proc = cli("audit", "-q", "--config", str(env_file), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "partial" and doc["errors"] and doc["findings"] == []
    assert "Traceback" not in proc.stderr


def test_run_once_logs_each_sweep_warning(tmp_path):
    """Warnings (here: a model with no price) reach the daemon's log, not only the database."""
    import json as _json
    from datetime import datetime, timedelta, timezone

    day = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT10:00:00Z")
    usage = tmp_path / "spans.jsonl"
    usage.write_text(_json.dumps({"timestamp": day, "attributes": {
        "gen_ai.provider.name": "acme", "gen_ai.request.model": "acme-internal-llm",
        "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10, "costwarden.feature": "triage"}}) + "\n")
    policy = tmp_path / "llm.yml"
    policy.write_text("policies:\n  - name: llm-features\n    resource: llm.feature\n    mode: report\n"
                      "    filters:\n      - oversized-model\n")
    cfg = tmp_path / "costwarden.yml"
    cfg.write_text(f"json_logs: true\npolicies: [{policy}]\nbilling:\n  usage_paths: [{usage}]\n")
    proc = cli("run", "--once", "--config", str(cfg), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    events = [_json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    warned = [e for e in events if e.get("event") == "sweep warning"]
    assert warned and all(e["level"] == "warning" for e in warned)
    assert any("acme-internal-llm" in e["warning"] for e in warned)


@pytest.mark.parametrize("command", [["audit", "--demo", "-q"], ["run", "--demo", "--once"]])
def test_demo_without_the_demo_extra_is_one_line_exit_2(command, tmp_path, monkeypatch, capsys):
    """moto missing (a None entry in sys.modules hides an installed package from import and find_spec)."""
    monkeypatch.setitem(sys.modules, "moto", None)
    assert main([*command, "--state-dir", str(tmp_path / "state")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["costwarden: error: --demo needs the demo extra (moto not installed): "
                     "pip install 'costwarden[demo]'"]
    assert not (tmp_path / "state").exists()  # checked before anything started
