"""The GitHub Action (action.yml at the repository root): its inputs are wired, no input is
expanded inside a shell script, and its gate step, run with bash as the runner would, writes the
report and the exit code and fails only on bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_gate import WRAPPER, Git

REPO = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((REPO / "action.yml").read_text())


def _step(name: str) -> dict:
    return next(s for s in ACTION["runs"]["steps"] if s.get("name") == name)


def test_inputs_are_declared_and_never_expanded_inside_a_script():
    text = (REPO / "action.yml").read_text()
    used = set(re.findall(r"inputs\.([\w-]+)", text))
    assert used <= set(ACTION["inputs"]), used - set(ACTION["inputs"])
    assert {"base", "head", "threshold-pct", "usage", "config", "comment", "github-token"} <= used
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step.get("name")  # values arrive through env:
        assert "${{" not in (step.get("with") or {}).get("script", ""), step.get("name")
    assert ACTION["runs"]["using"] == "composite"
    assert "<!-- costwarden-gate -->" in _step("Post or update the pull-request comment")["with"]["script"]


@pytest.fixture
def pr_repo(tmp_path: Path) -> Git:
    g = Git(tmp_path / "repo")
    g.commit({"assistant/wrapper.py": WRAPPER.format(model="gpt-4o-mini")}, "base")
    g("update-ref", "refs/remotes/origin/main", "HEAD")  # what actions/checkout with fetch-depth 0 leaves
    g("checkout", "-q", "-b", "feature")
    g.commit({"assistant/wrapper.py": WRAPPER.format(model="gpt-4-turbo")}, "bump")
    return g


def _run_gate_step(repo: Git, tmp_path: Path, **inputs: str) -> tuple[subprocess.CompletedProcess, dict, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "costwarden"  # the console script pip would install
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m costwarden.agent.cli "$@"\n')
    shim.chmod(0o755)
    out, summary = tmp_path / "github_output", tmp_path / "summary.md"
    out.write_text("")
    step = _step("Run the gate")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_"))}
    env.update({k: "" for k in step["env"]})
    env.update({"BASE_REF": "main", "HEAD_REV": "HEAD", "THRESHOLD_PCT": "20", "MIN_DELTA_USD": "0"})
    env.update(inputs)
    env.update({"PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "PYTHONPATH": str(REPO), "GITHUB_OUTPUT": str(out),
                "RUNNER_TEMP": str(tmp_path), "GITHUB_STEP_SUMMARY": str(summary)})
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo.path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    return proc, outputs, summary


def test_gate_step_reports_an_increase_without_failing_before_the_comment(pr_repo, tmp_path):
    proc, outputs, summary = _run_gate_step(pr_repo, tmp_path)  # base defaults to origin/<base branch>
    assert proc.returncode == 0, proc.stderr
    assert outputs["exit"] == "1"
    report = Path(outputs["report"]).read_text()
    assert report.startswith("<!-- costwarden-gate -->") and "`gpt-4o-mini` -> `gpt-4-turbo`" in report
    assert summary.read_text() == report


def test_gate_step_passes_extra_args_and_fails_on_bad_input(pr_repo, tmp_path):
    proc, outputs, _ = _run_gate_step(pr_repo, tmp_path, ARGS="--threshold-pct 1000000 --region us-east-1")
    assert proc.returncode == 0 and outputs["exit"] == "0", proc.stderr
    proc, outputs, _ = _run_gate_step(pr_repo, tmp_path, BASE="no-such-branch")
    assert proc.returncode == 2 and outputs["exit"] == "2"
    assert "no-such-branch: no such revision" in proc.stderr
