"""The vocabulary through a real sweep: `audit --demo` (moto, real boto3) with value filters, the
tag shorthand gating a detector, a policy without detectors, and a max-resources guard that trips."""

from __future__ import annotations

import json

import yaml

from tests.test_cli import cli

POLICIES = {"policies": [
    {"name": "dev-idle-gpus", "resource": "aws.ec2", "mode": "approve",
     "filters": [{"tag:env": "dev"}, {"type": "idle-gpu", "lookback_days": 7}], "actions": ["stop"]},
    {"name": "web-review", "resource": "aws.ec2", "mode": "auto", "max-resources": 2,
     "filters": [{"tag:team": "web"}, {"type": "value", "key": "kind", "op": "regex", "value": "^m5\\."}],
     "actions": [{"type": "tag", "key": "reviewed", "value": "yes"}]},
]}


def test_value_filters_and_max_resources_in_a_demo_sweep(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(POLICIES, sort_keys=False))
    proc = cli("audit", "--demo", "-p", str(path), "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    by_policy: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        by_policy.setdefault(f["policy"], []).append(f)
    # idle GPUs in dev only: llm-finetune-02 (the dev one marked costwarden:protect is excluded)
    dev = by_policy["dev-idle-gpus"]
    assert [f["name"] for f in dev] == ["llm-finetune-02"]
    assert dev[0]["detector"] == "idle-gpu" and float(dev[0]["monthly_waste_usd"]) > 0
    # three m5 web instances pass; no detector, so no waste is claimed
    web = by_policy["web-review"]
    assert sorted(f["name"] for f in web) == ["web-1", "web-2", "web-3"]
    assert {f["detector"] for f in web} == {"filters"} and all(float(f["monthly_waste_usd"]) == 0 for f in web)
    # 3 > max-resources 2: none of its actions runs, each says why, and the sweep warns
    acts = [a for a in doc["actions"] if a["finding_id"] in {f["id"] for f in web}]
    assert len(acts) == 3 and {a["decision"] for a in acts} == {"report"}
    assert all("max-resources=2" in a["reason"] for a in acts)
    assert "detect: web-review: max-resources guard: the policy flagged 3 resources" in proc.stderr
    assert any(w.startswith("web-review: max-resources guard") for w in doc["warnings"])
    dev_acts = [a for a in doc["actions"] if a["finding_id"] == dev[0]["id"]]
    assert [a["decision"] for a in dev_acts] == ["needs_approval"]
