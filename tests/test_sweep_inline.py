"""The one-shot walk of the sweep graph (agent/engine/inline.py) and LangGraph's agree.

`audit` walks the graph's declaration in its own process instead of importing LangGraph; the
daemon runs the same declaration on LangGraph. Here the same sweeps run both ways against moto,
from the same clock, and must take the same path through the graph and end in the same state.
"""

from __future__ import annotations

import logging
import operator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.demo.estate import DEMO_REGIONS, demo_session, seed_estate
from costwarden.agent.demo.waste import seed_waste
from costwarden.agent.engine.inline import apply, reducers
from costwarden.agent.engine.sweep import SweepResult, run_sweep
from costwarden.policies.loader import default_pack_path, load_policies, load_policy_file

LIVE = """
policies:
  - name: stop-idle-gpus
    resource: aws.ec2
    mode: auto
    filters:
      - type: idle-gpu
        lookback_days: 7
    actions:
      - stop
    limits:
      max_monthly_usd_per_auto_action: 50000
      protected_tags: {"costwarden:protect": "true"}
      approval_environments: [staging]
"""


def _sweep(state_dir: Path, policies: list[Any], caplog: pytest.LogCaptureFixture, *, dry_run: bool,
           inline: bool, now: datetime) -> tuple[dict[str, Any], list[str]]:
    """One sweep; what it concluded, keyed by resource Name (ids differ between seeded estates)."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="costwarden.sweep"):
        r = run_sweep(Settings(state_dir=state_dir, aws=AwsSettings(regions=DEMO_REGIONS)), policies,
                      dry_run=dry_run, now=now, inline=inline)
    path = next(rec.nodes for rec in caplog.records if rec.getMessage() == "sweep path")
    return summary(r), path


def ranked(r: SweepResult) -> list[list[str]]:
    """The priority order as runs of tied findings (same severity and waste), each run's names sorted:
    ties fall to resource ids, which differ between seeded estates."""
    by_id = {f.id: f for f in r.findings}
    runs: list[tuple[tuple[str, str], list[str]]] = []
    for i in r.priority:
        f = by_id[i]
        key = (f.severity, str(f.monthly_waste_usd))
        if runs and runs[-1][0] == key:
            runs[-1][1].append(f.tags.get("Name", f.resource_id))
        else:
            runs.append((key, [f.tags.get("Name", f.resource_id)]))
    return [sorted(names) for _key, names in runs]


def summary(r: SweepResult) -> dict[str, Any]:
    name = {f.id: f.tags.get("Name", f.resource_id) for f in r.findings}
    return {
        "status": r.status, "inventoried": r.inventoried, "errors": r.errors, "warnings": sorted(r.warnings),
        "findings": sorted((f.policy, f.detector, name[f.id], str(f.monthly_waste_usd), f.rationale)
                           for f in r.findings),
        "actions": sorted((a.policy, a.tool, name.get(a.finding_id), a.decision, a.status, str(a.projected_monthly_savings_usd))
                          for a in r.actions),
        "insufficient": sorted(str(sorted(i.items())) for i in r.insufficient),
        "priority": ranked(r),
        "api_calls": r.api_calls, "refused": r.refused_calls,
    }


def _seed(endpoint: str, now: datetime) -> None:
    session = demo_session()
    seed_estate(endpoint, days=8, now=now, session=session)
    seed_waste(session, endpoint, now=now)


def test_a_dry_run_of_every_shipped_policy_takes_the_same_path_to_the_same_state(aws, tmp_path, caplog,
                                                                                   no_costwarden_env):
    now = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
    _seed(aws.endpoint, now)
    policies = load_policies([default_pack_path().parent])  # both shipped packs: every AWS detector
    graph, graph_path = _sweep(tmp_path / "graph", policies, caplog, dry_run=True, inline=False, now=now)
    inline, inline_path = _sweep(tmp_path / "inline", policies, caplog, dry_run=True, inline=True, now=now)
    assert graph_path == ["collect", "detect", "explain", "plan", "guard", "record"]
    assert inline_path == graph_path
    assert len(graph["findings"]) >= 5 and graph["actions"]
    assert inline == graph


def test_a_live_sweep_with_auto_and_approval_actions_takes_the_same_path_to_the_same_state(aws, tmp_path, caplog,
                                                                                            no_costwarden_env):
    """Live: one idle instance is stopped (auto), one waits for approval (staging); each run on a freshly
    seeded estate, since the first run's StopInstances changes it."""
    now = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
    policy_file = tmp_path / "live.yml"
    policy_file.write_text(LIVE)
    policies = load_policy_file(policy_file)
    runs = {}
    for inline in (False, True):
        aws.reset()
        _seed(aws.endpoint, now)
        runs[inline] = _sweep(tmp_path / f"state-{inline}", policies, caplog, dry_run=False, inline=inline, now=now)
    (graph, graph_path), (inline_result, inline_path) = runs[False], runs[True]
    assert graph_path == ["collect", "detect", "explain", "plan", "guard", "approve", "act", "record"]
    assert inline_path == graph_path
    decisions = {a[3] for a in graph["actions"]}
    assert decisions == {"auto", "needs_approval"}, graph["actions"]
    assert inline_result == graph


def test_an_empty_estate_goes_straight_from_detect_to_record(aws, tmp_path, caplog, no_costwarden_env):
    now = datetime.now(timezone.utc)
    policies = load_policies([])
    graph = _sweep(tmp_path / "graph", policies, caplog, dry_run=True, inline=False, now=now)
    inline = _sweep(tmp_path / "inline", policies, caplog, dry_run=True, inline=True, now=now)
    assert graph[1] == inline[1] == ["collect", "detect", "record"]
    assert inline[0] == graph[0]


def test_state_updates_follow_langgraphs_rules():
    """Reducer keys (errors, warnings: operator.add) accumulate; others are replaced; unknown keys fail."""
    assert reducers()["errors"] is operator.add and reducers()["findings"] is None
    state: dict[str, Any] = {}
    apply(state, {"errors": ["a"], "findings": [{"id": 1}]}, "collect")
    apply(state, {"errors": ["b"], "findings": [{"id": 2}]}, "detect")
    assert state == {"errors": ["a", "b"], "findings": [{"id": 2}]}
    with pytest.raises(KeyError, match="'detect' returned 'finding'"):
        apply(state, {"finding": []}, "detect")
