"""`costwarden policies import-c7n` on Cloud Custodian policies written from c7n's own docs
(tests/data/c7n/policies.yml cites each source): what converts, what does not, line by line."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from costwarden.policies.c7n.convert import convert_document
from costwarden.policies.loader import load_policy_file
from costwarden.policies.yamlsrc import load_located_yaml, parse_located_yaml
from costwarden.state.domain import Resource

DATA = Path(__file__).parent / "data" / "c7n" / "policies.yml"
NOW = datetime(2026, 6, 15, tzinfo=timezone.utc)

CONVERTED = ["ec2-tag-compliance-mark", "ec2-stop-marked", "offhours-stop", "offhours-start",
             "ebs-delete-old-unattached", "release-network-addr", "gpu-idle-stop", "ec2-env-dev-stop",
             "ec2-missing-owner-tag", "ec2-stop-untagged-guarded", "sagemaker-zombie-endpoints"]
NOT_CONVERTED = [  # (line in the c7n file, policy, why)
    (65, "offhours-opt-out", "opt-out"),
    (77, "ebs-mark-unattached-deletion", "action mark-for-op: converts on ec2 only"),
    (109, "ec2-low-cpu", "metric 'CPUUtilization'"),
    (179, "snapshots-old", "filter type 'age' has no Costwarden equivalent"),
    (189, "ec2-glob-name", "unknown op 'glob'"),
]


def test_converts_what_it_can_and_lists_the_rest_line_by_line():
    result = convert_document(load_located_yaml(DATA))
    assert result.total == 16
    assert [p["name"] for p in result.policies] == CONVERTED
    got = [(x.line, x.policy, x.reason) for x in result.not_converted]
    assert len(got) == len(NOT_CONVERTED)
    for (line, name, reason), (eline, ename, words) in zip(got, NOT_CONVERTED):
        assert (line, name) == (eline, ename) and words in f"{x_part(result, name)}: {reason}"
    lines = DATA.read_text().splitlines()
    for x in result.not_converted:  # each line named is inside the policy it names
        assert any(f"name: {x.policy}" in ln for ln in lines[:x.line])


def x_part(result, name):
    return next(x.part for x in result.not_converted if x.policy == name)


def by_name(result):
    return {p["name"]: p for p in result.policies}


def test_the_comparison_policies_convert_to_their_meaning():
    """The idle-GPU policy and the tag value / missing tag / max-resources policies of issue #20."""
    p = by_name(convert_document(load_located_yaml(DATA)))
    gpu = p["gpu-idle-stop"]
    assert gpu["filters"][0] == {"type": "value", "key": "state", "value": "running"}
    assert gpu["filters"][1]["key"] == "kind" and gpu["filters"][1]["op"] == "regex"
    assert gpu["filters"][2] == {"type": "idle-gpu", "lookback_days": 7, "gpu_util_threshold_pct": 5}
    assert gpu["actions"] == [{"type": "stop"}] and gpu["mode"] == "approve"
    assert p["ec2-env-dev-stop"]["filters"][0] == {"type": "value", "key": "tag:env", "value": "dev"}
    assert p["ec2-missing-owner-tag"]["actions"] == [{"type": "tag", "tags": {"owner": "unknown"}}]
    assert p["ec2-stop-untagged-guarded"]["max_resources"] == 5
    assert p["ebs-delete-old-unattached"]["actions"] == [{"type": "snapshot-and-delete"}]
    assert p["ebs-delete-old-unattached"]["filters"][2]["value"] == ["ebs:gp2", "ebs:gp3"]
    assert p["sagemaker-zombie-endpoints"]["filters"][1] == {"type": "zombie-endpoint", "lookback_days": 7}
    assert p["sagemaker-zombie-endpoints"]["actions"] == [{"type": "delete-endpoint"}]


def test_converted_filters_select_what_c7n_would(tmp_path):
    out = tmp_path / "converted.yml"
    out.write_text(yaml.safe_dump({"policies": convert_document(load_located_yaml(DATA)).policies}))
    loaded = {lp.name: lp for lp in load_policy_file(out)}

    def ec2(tags, state="running"):
        return Resource("aws", "1", "us-east-1", "aws.ec2", "i-1", kind="g5.xlarge", state=state, tags=tags)

    compliance = loaded["ec2-tag-compliance-mark"].filters
    assert compliance.passes(ec2({"Owner": "a", "CostCenter": "b"}), NOW)  # Project missing
    assert not compliance.passes(ec2({"Owner": "a", "CostCenter": "b", "Project": "c"}), NOW)
    assert not compliance.passes(ec2({"aws:autoscaling:groupName": "asg"}), NOW)
    dev = loaded["ec2-env-dev-stop"].filters
    assert dev.passes(ec2({"env": "dev"}), NOW) and not dev.passes(ec2({"env": "dev"}, "stopped"), NOW)
    old = NOW - timedelta(days=40)
    vol = Resource("aws", "1", "us-east-1", "aws.ebs-volume", "vol-1", kind="ebs:gp3", state="available",
                   attrs={"create_time": old.isoformat()})
    assert loaded["ebs-delete-old-unattached"].filters.passes(vol, NOW)
    io2 = Resource("aws", "1", "us-east-1", "aws.ebs-volume", "vol-1", kind="ebs:io2", state="available",
                   attrs={"create_time": old.isoformat()})
    assert not loaded["ebs-delete-old-unattached"].filters.passes(io2, NOW)


def test_a_file_that_is_not_c7n_is_one_line_and_a_bad_max_resources_is_listed():
    doc = parse_located_yaml("policies:\n  - name: x\n    resource: ec2\n    max-resources-percent: 10\n"
                             "  - name: Y_Upper\n    resource: ec2\n    max-resources: 3\n", "c.yml")
    result = convert_document(doc)
    assert [(x.line, x.policy) for x in result.not_converted] == [(4, "x")]
    assert result.policies[0]["name"] == "y_upper" and result.policies[0]["max_resources"] == 3
    assert any(n.part == "name" for n in result.notes)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "costwarden.agent.cli.main", *args], capture_output=True,
                          text=True, timeout=120, env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": "/usr/bin:/bin",
                                                       "NO_COLOR": "1", "COLUMNS": "400"})


def test_cli_writes_loadable_policies_and_lists_each_part_not_converted(tmp_path):
    out = tmp_path / "out.yml"
    proc = run_cli("policies", "import-c7n", str(DATA), "--output", str(out))
    assert proc.returncode == 1, proc.stderr  # some policies could not be converted
    listed = [ln for ln in proc.stderr.splitlines() if ln.startswith("not converted ")]
    assert [ln.split(": policy ")[0].rsplit(":", 1)[1] for ln in listed] == [str(n[0]) for n in NOT_CONVERTED]
    assert proc.stderr.strip().endswith(f"11 of 16 policies converted; written to {out}")
    check = run_cli("policies", "validate", str(out))
    assert check.returncode == 0, check.stderr
    assert "11 policies valid" in check.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text("just: text\n")
    proc = run_cli("policies", "import-c7n", str(bad))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "not a Cloud Custodian file" in proc.stderr
