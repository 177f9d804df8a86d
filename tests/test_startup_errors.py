"""`costwarden run` start-up mistakes: one line on stderr, exit 2, nothing migrated or bound."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

POLICY = """
policies:
  - name: idle
    resource: aws.ec2
    filters: [{type: idle-gpu}]
    actions: [stop]
"""


def run(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COSTWARDEN_")}
    base.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "COSTWARDEN_JSON_LOGS": "false", **(env or {})})
    return subprocess.run([sys.executable, "-m", "costwarden.agent.cli", "run", "--state-dir", str(tmp / "state"),
                           "--policy", str(tmp / "p.yml"), "--host", "127.0.0.1", *args],
                          env=base, capture_output=True, text=True, timeout=60)


CASES = {
    "port-negative": (["--port", "-1"], {}, "http_port"),
    "port-too-big": (["--port", "70000"], {}, "http_port"),
    "interval-negative": (["--interval-minutes", "-5"], {}, "sweep_interval_minutes"),
    "interval-zero": (["--interval-minutes", "0"], {}, "sweep_interval_minutes"),
    "interval-nan": (["--interval-minutes", "nan"], {}, "sweep_interval_minutes"),
    "interval-inf": (["--interval-minutes", "inf"], {}, "sweep_interval_minutes"),
    "env-interval-zero": ([], {"COSTWARDEN_SWEEP_INTERVAL_MINUTES": "0"}, "COSTWARDEN_SWEEP_INTERVAL_MINUTES"),
    "env-interval-nan": ([], {"COSTWARDEN_SWEEP_INTERVAL_MINUTES": "nan"}, "COSTWARDEN_SWEEP_INTERVAL_MINUTES"),
    "unpinned-workspace": ([], {"COSTWARDEN_SLACK__SIGNING_SECRET": "8f14e45fceea167a5a36dedd4bea2543"},
                           "slack.team_id"),
}


def test_bad_flags_and_settings_are_one_line_exit_2_and_touch_nothing(tmp_path):
    (tmp_path / "p.yml").write_text(POLICY)
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(CASES, pool.map(lambda c: run(tmp_path, *c[0], env=c[1]), CASES.values())))
    for name, (_, _, needle) in CASES.items():
        r = results[name]
        assert r.returncode == 2, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("costwarden: error:") and needle in lines[0], (name, r.stderr)
    assert not (tmp_path / "state" / "costwarden.db").exists()
    # the flag and its environment variable obey one rule, so they fail alike
    flag = results["interval-zero"].stderr.split("sweep_interval_minutes", 1)[1]
    env = results["env-interval-zero"].stderr.split("sweep_interval_minutes", 1)[1]
    assert flag == env


def test_port_in_use_fails_before_the_database_is_migrated(tmp_path):
    (tmp_path / "p.yml").write_text(POLICY)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = run(tmp_path, "--port", str(taken.getsockname()[1]))
    assert r.returncode == 2
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("costwarden: error: cannot listen on 127.0.0.1:") and "in use" in line
    assert not (tmp_path / "state" / "costwarden.db").exists()


@pytest.mark.parametrize("name", ["checkpoints.sqlite", "costwarden.db"])
def test_a_corrupt_database_file_is_one_line_before_anything_starts(tmp_path, name):
    (tmp_path / "p.yml").write_text(POLICY)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / name).write_bytes(b"this is not an SQLite database, it is a note" * 100)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    r = run(tmp_path, "--port", str(port))
    assert r.returncode == 2
    [line] = r.stderr.strip().splitlines()
    assert name in line and "unreadable" in line
    if name == "checkpoints.sqlite":
        assert not (tmp_path / "state" / "costwarden.db").exists()
