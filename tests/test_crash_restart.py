"""SIGKILL at each step of approve -> claim -> act -> verify -> record, then restart: every
approved action is executed exactly once (one StopInstances, counted at the moto server) or,
when it may no longer run, withdrawn with its reason. On SQLite and on PostgreSQL.

One sweep per database plans one idle GPU instance per step; each step gets its own child
process (tests/crash/child.py) that clicks Approve through the real signed-request handler and
is killed at that step. All children run at once; then one "restart", a fresh store on the same
database running the daemon's start-up settlement, settles what they left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from costwarden.agent.config import Settings
from costwarden.agent.demo.estate import DemoInstance, seed_estate
from costwarden.agent.engine.reconcile import settle_at_start
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.store import Store
from tests.fakes.slack import TEAM_ID, FakeSlack

ROOT = Path(__file__).resolve().parent.parent
TOKEN, SECRET, ALICE = "xoxb-test-token-0000", "8f14e45fceea167a5a36dedd4bea2543", "U0ALICE"
STEPS = ("vote", "claim", "act", "verify", "record")
POLICY = """
policies:
  - name: idle-gpus
    resource: aws.ec2
    mode: approve
    filters: [{type: idle-gpu, lookback_days: 1}]
    actions: [stop]
    approval:
      approvers: [U0ALICE]
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/cw.db"
        return
    from tests.pg import throwaway_database

    with throwaway_database("cw_crash") as url:
        yield url


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(TOKEN)
    yield fake
    fake.stop()


def _settings_values(database_url: str, state_dir: Path, slack: FakeSlack) -> dict[str, Any]:
    """Plain values, so the child builds the same Settings (secrets included) from JSON."""
    return {"dry_run": False, "state_dir": str(state_dir), "database_url": database_url,
            "aws": {"regions": ["us-east-1"]},
            "slack": {"bot_token": TOKEN, "signing_secret": SECRET, "channel": "#finops",
                      "base_url": slack.base_url, "team_id": TEAM_ID}}


def _spawn(steps: dict[str, str], values: dict[str, Any], policy_file: Path) -> subprocess.Popen[str]:
    arg = json.dumps({"steps": steps, "settings": values, "policy_file": str(policy_file), "user": ALICE,
                      "secret": SECRET})
    return subprocess.Popen([sys.executable, "-m", "tests.crash.child", arg], cwd=ROOT, env=os.environ.copy(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_each_at_its_step(parent: subprocess.Popen[str], act_reached: Any, deadline: float) -> set[str]:
    """Read the children's words; SIGKILL each at its step (`act`: once moto has applied its stop).
    Return the steps killed."""
    assert parent.stdout is not None
    pids: dict[str, int] = {}
    killed: set[str] = set()

    def kill(step: str) -> None:
        os.kill(pids[step], signal.SIGKILL)
        killed.add(step)

    while len(killed) < len(STEPS) and time.monotonic() < deadline:
        line = parent.stdout.readline().split()
        if not line:
            break  # the parent exited: every child is gone
        if line[0] == "pid":
            pids[line[1]] = int(line[2])
            if line[1] == "act":
                while not act_reached() and time.monotonic() < deadline:
                    time.sleep(0.02)
                kill("act")
        elif line[0] == "reached":
            kill(line[1])
        else:
            raise AssertionError(f"a child finished instead of being killed: {line}")
    return killed


def test_sigkill_at_each_step_then_restart_executes_each_approved_action_exactly_once(
        aws, slack, database_url, tmp_path, no_costwarden_env):
    started = time.monotonic()
    estate = [DemoInstance(f"idle-{step}", "us-east-1", "p4d.24xlarge", {"env": "dev"}, "idle", "idle")
              for step in STEPS]
    ids = seed_estate(aws.endpoint, days=2, estate=estate)
    policy_file = tmp_path / "p.yml"
    policy_file.write_text(POLICY)
    policies = load_policy_file(policy_file)
    values = _settings_values(database_url, tmp_path / "state", slack)
    settings = Settings.model_validate(values)
    result = run_sweep(settings, policies, dry_run=False)
    by_instance = {a.args["instance_id"]: a.id for a in result.actions}
    action_of = {step: by_instance[ids[f"idle-{step}"]] for step in STEPS}
    assert len(action_of) == len(STEPS) and all(a.status == "awaiting_approval" for a in result.actions)
    aws.clear_calls()
    # act: moto applies this one instance's stop, then holds the answer until the child is dead
    aws.hold("StopInstances", 30, matching=ids["idle-act"])

    parent = _spawn(action_of, values, policy_file)
    try:
        killed = _kill_each_at_its_step(parent, lambda: any(r.get("InstanceId.1") == ids["idle-act"]
                                                            for r in aws.requests_for("StopInstances")),
                                        time.monotonic() + 20)
        assert parent.wait(10) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert killed == set(STEPS), parent.stderr.read() if parent.stderr else ""
    aws.recorder.delays.clear()

    store = Store(settings.db_url)
    before = {step: store.get_action(action_of[step]).status for step in STEPS}
    assert before == {"vote": "approved", "claim": "pending", "act": "pending", "verify": "pending",
                      "record": "done"}

    if store.engine.dialect.name != "sqlite":
        # shared database: a claim younger than the lease may be a live replica's call in flight
        sent = len(aws.requests_for("StopInstances"))  # the act, verify and record children's
        early = settle_at_start(settings, store, {p.name: p for p in policies})
        assert early["in_flight"] == 4 and early["executed"] == early["done"] == early["released"] == 0
        assert len(aws.requests_for("StopInstances")) == sent == 3
        assert {step: store.get_action(action_of[step]).status for step in STEPS} == before
        time.sleep(0.2)  # then the lease passes (its floor here: 0.1 s)
        settings = settings.model_copy(update={"claim_lease_minutes": 0.1 / 60})
    counts = settle_at_start(settings, store, {p.name: p for p in policies})  # the restart

    stops = [r["InstanceId.1"] for r in aws.requests_for("StopInstances")]
    for step in STEPS:
        assert stops.count(ids[f"idle-{step}"]) == 1, (step, stops)
        row = store.get_action(action_of[step])
        assert row.status == "done", (step, row.status, row.error)
    assert len(stops) == len(STEPS)
    assert counts["executed"] == 2  # vote: never claimed; claim: claimed, nothing sent (re-run once)
    assert counts["done"] == 2  # act, verify: found stopped, recorded without a second call
    # every approval message ends with the outcome, the ones cut off before the update included
    updates = [json.dumps(a["blocks"]) for m, a in slack.calls if m == "chat.update"]
    assert sum("Approved by slack:U0ALICE" in u for u in updates) >= len(STEPS)

    # a second restart finds nothing left to settle and sends nothing
    again = settle_at_start(settings, Store(settings.db_url), {p.name: p for p in policies})
    assert not any(again.values()) and len(aws.requests_for("StopInstances")) == len(STEPS)
    store.close()
    assert time.monotonic() - started < 30
