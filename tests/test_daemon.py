"""The daemon as users deploy it: a real subprocess against moto, its endpoints, SIGTERM, SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.moto_server import mutating

APPROVE_POLICY = """
policies:
  - name: idle-gpu-instances
    resource: aws.ec2
    mode: approve
    filters: [{type: idle-gpu}]
    actions: [stop]
"""

AUTO_POLICY = """
policies:
  - name: stop-idle-gpus
    resource: aws.ec2
    mode: auto
    filters: [{type: idle-gpu}]
    actions: [stop]
    limits: {max_monthly_usd_per_auto_action: 50000}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, sqlite3.Error):
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited early ({proc.returncode}) waiting for {what}: {proc.stderr.read()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if name + "{" in line or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return None


class DaemonProc:
    def __init__(self, tmp_path: Path, endpoint: str, *, dry_run: bool, policy: str | None = None,
                 extra: dict | None = None) -> None:
        self.port = free_port()
        self.state = tmp_path / "state"
        cfg = {"dry_run": dry_run, "state_dir": str(self.state), "sweep_interval_minutes": 0.05,
               "shutdown_timeout_seconds": 60,  # a loaded CI machine may still be mid-sweep
               "aws": {"regions": ["us-east-1", "us-west-2"], "endpoint_url": endpoint}}
        cfg.update(extra or {})
        if policy:
            (tmp_path / "policy.yml").write_text(policy)
            cfg["policies"] = [str(tmp_path / "policy.yml")]
        self.config = tmp_path / "costwarden.yml"
        self.config.write_text(json.dumps(cfg))  # JSON is YAML
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_"))}
        self.env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "costwarden.agent.cli", "run", "--config", str(self.config), "--host", "127.0.0.1",
             "--port", str(self.port)], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: get(self.port, "/healthz")[0] == 200, 30, "/healthz", self.proc)
        return self.proc

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.state / "costwarden.db", timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def estate(aws):
    from costwarden.agent.demo.estate import seed_estate

    ids = seed_estate(aws.endpoint)
    aws.clear_calls()
    return ids


def test_daemon_sweeps_on_schedule_serves_endpoints_and_stops_on_sigterm(aws, estate, tmp_path):
    d = DaemonProc(tmp_path, aws.endpoint, dry_run=True, policy=APPROVE_POLICY)  # no schedule: every 3 s
    proc = d.start()
    try:
        status, body = wait_for(lambda: (r := get(d.port, "/readyz"))[0] == 200 and r, 30, "/readyz", proc)
        ready = json.loads(body)
        assert ready["database"] and ready["scheduler"] and ready["role"] == "leader" and ready["dry_run"]
        # the interval is 3 s: wait until at least two sweeps are recorded
        text = wait_for(lambda: (m := get(d.port, "/metrics")[1]) and (metric(m, "costwarden_runs") or 0) >= 2 and m,
                        60, "two sweeps", proc)
        assert 'costwarden_findings{detector="idle-gpu",policy="idle-gpu-instances"} 3.0' in text
        assert 'costwarden_monthly_waste_usd{detector="idle-gpu",policy="idle-gpu-instances"} 32946.36' in text
        assert 'costwarden_actions{decision="needs_approval",status="dry_run"}' in text
        assert "costwarden_sweep_duration_seconds" in text and "costwarden_leader 1.0" in text
        assert 'costwarden_api_calls_total{operation="cloudwatch.GetMetricData"}' in text
        # the same calls by service and operation, counted as they are sent (a sweep under way included)
        by_op = metric(text, 'costwarden_api_calls_total{operation="cloudwatch.GetMetricData"}') or 0
        sent = metric(text, 'costwarden_cloud_api_calls_total{operation="GetMetricData",service="cloudwatch"}') or 0
        assert sent >= by_op > 0
        # SDK retries by service and API operation (none here: nothing throttles); the old series is gone
        assert "# TYPE costwarden_cloud_retries_total counter" in text and "costwarden_retries_total" not in text
        assert get(d.port, "/nope")[0] == 404

        # a changed policy file is picked up without a restart
        (tmp_path / "policy.yml").write_text(APPROVE_POLICY.replace("name: idle-gpu-instances", "name: renamed"))
        wait_for(lambda: json.loads(get(d.port, "/readyz")[1])["policies"] == ["renamed"], 20, "reload", proc)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
    finally:
        d.stop()
    assert mutating(aws.calls) == []
    events = [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]
    assert any(e["event"] == "decision" and e["action_id"].startswith("act_") and e["run_id"] for e in events)
    assert events[-1]["event"] == "costwarden daemon stopped"


def test_sigkill_mid_action_is_reconciled_at_next_start_without_a_second_call(aws, estate, tmp_path):
    aws.hold("StopInstances", 60)  # the stop is applied, the answer never arrives in time
    d = DaemonProc(tmp_path, aws.endpoint, dry_run=False, policy=AUTO_POLICY)
    proc = d.start()
    try:
        wait_for(lambda: "StopInstances" in aws.calls, 60, "the first StopInstances", proc)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        d.stop()
    with d.db() as db:
        [(action_id, before)] = db.execute("SELECT id, before_state FROM actions WHERE status='pending'").fetchall()
        assert json.loads(before)["state"] == "running"  # written before the call
        assert db.execute("SELECT count(*) FROM actions WHERE status='planned'").fetchone() == (1,)  # not reached
        assert db.execute("SELECT status FROM runs").fetchall() == [("running",)]

    aws.recorder.delays.clear()
    d2 = DaemonProc(tmp_path, aws.endpoint, dry_run=False, policy=AUTO_POLICY)
    proc2 = d2.start()
    try:
        def settled():
            with d2.db() as db:
                row = db.execute("SELECT status FROM actions WHERE id=?", (action_id,)).fetchone()
                done = db.execute("SELECT count(*) FROM actions WHERE status='done'").fetchone()[0]
                return row[0] == "done" and done == 2
        wait_for(settled, 60, "reconciliation and the second instance", proc2)
        proc2.send_signal(signal.SIGTERM)
        assert proc2.wait(90) == 0
    finally:
        d2.stop()
    # one StopInstances for the instance that was in flight, one for the other idle p4d: never a second
    assert aws.calls.count("StopInstances") == 2
    with d2.db() as db:
        reasons = [r for (r,) in db.execute(
            "SELECT reason FROM decisions WHERE action_id=? AND stage='reconcile'", (action_id,))]
        assert reasons == ["found already applied after a restart; not called again"]
        statuses = sorted(s for (s,) in db.execute("SELECT status FROM runs"))
        assert "interrupted" in statuses and "done" in statuses
        # the action the killed run never reached is marked, not left looking planned
        assert db.execute("SELECT count(*) FROM actions WHERE status='planned'").fetchone() == (0,)
