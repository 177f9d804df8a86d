"""The one-shot commands import only what they use (issue #20, item 5: lean start).

Each command runs in a fresh interpreter that prints, after the command, which of the heavy
packages it imported. Asserting on `sys.modules` rather than on seconds keeps the test exact on
a loaded machine: bench/import_time.py prints the seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACK = REPO / "policies" / "packs" / "default.yml"
# What a command that does not sweep must never import: the graph runtime and its tracing client,
# the LLM client, the cloud SDKs, the database layer, the SQL engine, the gate's price tables.
HEAVY = ("langgraph", "langchain_core", "langsmith", "litellm", "google.cloud", "grpc", "boto3", "botocore",
         "sqlalchemy", "alembic", "duckdb", "jinja2", "slack_sdk", "apscheduler", "uvicorn", "starlette",
         "costwarden.policies.gate")


def imported_by(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run `costwarden <args>` in a fresh interpreter; (exit code, the HEAVY packages it imported)."""
    code = ("import json, sys\nfrom costwarden.agent.cli.main import main\n"
            f"rc = main({args!r})\n"
            f"mods = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "sys.stderr.write('\\n' + json.dumps([rc, mods]) + '\\n')\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_", "LANGCHAIN_", "LANGSMITH_"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.stderr.strip(), proc.stdout
    rc, mods = json.loads(proc.stderr.strip().splitlines()[-1])
    return rc, mods


@pytest.mark.parametrize("args", [
    ["--help"], ["version"], ["audit", "--help"], ["report", "--help"], ["gate", "--help"], ["run", "--help"],
    ["policies", "validate", str(PACK)], ["policies", "schema"],
], ids=lambda a: "-".join(a[:2]).strip("-"))
def test_commands_that_do_not_sweep_import_none_of_the_heavy_packages(args: list[str]) -> None:
    rc, mods = imported_by(args)
    assert rc == 0
    assert mods == [], f"`costwarden {' '.join(args)}` imported {mods}"


def test_the_sweep_imports_no_llm_client_and_no_google_sdk() -> None:
    """Importing the sweep (what `audit` does before it reads a policy) loads neither litellm nor
    the Google SDK: each loads when a policy or a configured provider needs it."""
    code = ("import sys\nimport costwarden.agent.engine.sweep\n"
            "print([m for m in ('litellm', 'google.cloud', 'grpc', 'duckdb', 'jinja2', 'slack_sdk', "
            "'costwarden.policies.gate') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_audit_sweeps_without_langgraph_litellm_or_the_google_sdk(aws, tmp_path: Path) -> None:
    """A one-shot dry-run audit walks the sweep graph in-process (agent/engine/inline.py): LangGraph,
    langchain_core and langsmith stay out, and so do litellm (no model configured) and the Google
    SDK (no GCP project). It still makes its API calls and reports what it found."""
    from costwarden.agent.demo.estate import seed_estate

    seed_estate(aws.endpoint, days=8)
    cfg = tmp_path / "config.yml"
    cfg.write_text('{"aws": {"regions": ["us-east-1", "us-west-2"]}}')
    out = tmp_path / "audit.json"
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                      "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")}
    rc, mods = imported_by(["audit", "-c", str(cfg), "--state-dir", str(tmp_path / "state"), "--format", "json",
                            "-o", str(out), "-q"], env=env)
    assert rc == 0
    assert json.loads(out.read_text())["findings"]  # it did sweep
    assert not {"langgraph", "langchain_core", "langsmith", "litellm", "google.cloud", "grpc"} & set(mods), mods
    assert "boto3" in mods and "sqlalchemy" in mods  # what it does use
