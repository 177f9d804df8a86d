"""route-model end to end: a live sweep of the demo's token usage proposes re-routing `helpdesk`
from gpt-4o to gpt-4o-mini; the proposal carries the diff (also in the Slack message); once
approved, real `git` commits it on a new branch and pushes it to a bare repository in tmp_path,
and the real httpx client opens the pull request on a fake GitHub API on 127.0.0.1. Dry-run,
protection and double execution are shown to push nothing and POST nothing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from costwarden.agent.config import Settings, SlackSettings
from costwarden.agent.demo.billing import write_demo_billing
from costwarden.agent.demo.gateway import CONFIG_PATH, write_demo_gateway
from costwarden.agent.engine.approvals import decide
from costwarden.agent.engine.context import Providers
from costwarden.agent.engine.execute import execute_action
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.state.domain import PlannedAction
from costwarden.state.store import Store
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.errors import DryRunViolation
from costwarden.tools.gateway.route import TOOL, GatewayClients
from costwarden.tools.gateway.route import run as route_run
from costwarden.tools.gateway.settings import GatewaySettings
from tests.fakes.github import FakeGitHub
from tests.fakes.slack import TEAM_ID, FakeSlack

GH_REPO, GH_TOKEN, TOKEN_ENV = "acme/gateway-config", "ghp_test_token_0000", "CW_TEST_GITHUB_TOKEN"
SLACK_TOKEN, SECRET = "xoxb-test-token-0000", "8f14e45fceea167a5a36dedd4bea2543"
POLICY = """
policies:
  - name: right-size-models
    resource: llm.feature
    mode: {mode}
    filters:
      - or:  # each reports on its own; route-model answers only oversized-model's findings
          - type: spend-anomaly
          - type: oversized-model
            allowed_models: [gpt-4o-mini]
    actions:
      - type: route-model
        pull_request: {pr}
    limits:
      protected_tags: {protected}
      max_monthly_usd_per_auto_action: {cap}
    approval:
      approvers: [U0ALICE]
"""


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def refs(bare: Path) -> dict[str, str]:
    out = git("--git-dir", str(bare), "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines())


def pushes(bare: Path) -> list[str]:
    log = bare / "pushes.log"
    return [ln for ln in log.read_text().splitlines() if ln == "push"] if log.exists() else []


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository holding the demo's LiteLLM config on main; its hook logs every push it receives."""
    bare = tmp_path / "gateway.git"
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(bare))
    write_demo_gateway(tmp_path / "seed")
    git("push", "--quiet", str(bare), "main", cwd=tmp_path / "seed")
    hook = bare / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\necho push >> '{bare / 'pushes.log'}'\ncat >> '{bare / 'pushes.log'}'\n")
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    return bare


@pytest.fixture
def github(remote: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(TOKEN_ENV, GH_TOKEN)
    fake = FakeGitHub(GH_REPO, remote, GH_TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def slack():
    fake = FakeSlack(SLACK_TOKEN)
    yield fake
    fake.stop()


def world(tmp_path: Path, remote: Path, github: FakeGitHub, slack: FakeSlack | None, *, dry_run: bool,
          pr: bool = True, protected: str = "{}", mode: str = "approve", cap: float = 100) -> tuple[Settings, list]:
    usage = tmp_path / "usage"
    usage.mkdir(exist_ok=True)
    billing = BillingSettings.model_validate(write_demo_billing(usage))
    policy = tmp_path / "p.yml"
    policy.write_text(POLICY.format(pr=str(pr).lower(), protected=protected, mode=mode, cap=cap))
    settings = Settings(
        state_dir=tmp_path / "state", dry_run=dry_run, billing=billing,
        gateway=GatewaySettings(repo=str(remote), config_path=CONFIG_PATH, github_repo=GH_REPO,
                                github_api_url=github.endpoint, github_token_env=TOKEN_ENV),
        slack=SlackSettings(bot_token=SLACK_TOKEN, signing_secret=SECRET, channel="#finops",
                            base_url=slack.base_url, team_id=TEAM_ID) if slack else SlackSettings())
    return settings, load_policy_file(policy)


def helpdesk(result) -> PlannedAction:
    (a,) = [a for a in result.actions if a.tool == TOOL]
    assert a.args["feature"] == "helpdesk"
    return a


def test_the_proposal_carries_the_diff_and_approval_pushes_one_branch_and_opens_one_pull_request(
        tmp_path, remote, github, slack, no_costwarden_env):
    before = refs(remote)
    settings, policies = world(tmp_path, remote, github, slack, dry_run=False)
    result = run_sweep(settings, policies, dry_run=False)
    a = helpdesk(result)
    assert a.decision == "needs_approval" and a.status == "awaiting_approval"
    assert a.args["routes"][0]["from_model"] == "gpt-4o" and a.args["routes"][0]["to_model"] == "gpt-4o-mini"
    assert "-      model: openai/gpt-4o\n+      model: openai/gpt-4o-mini\n" in a.args["diff"]
    assert a.projected_monthly_savings_usd > 0
    # the Slack message shows the diff and the projected saving; nothing was pushed or posted yet
    post = [args for m, args in slack.calls if m == "chat.postMessage"][-1]
    blocks = json.dumps(post["blocks"])
    assert "+      model: openai/gpt-4o-mini" in blocks and "Projected saving" in blocks
    assert refs(remote) == before and pushes(remote) == [] and github.requests == []
    # and `costwarden approvals list` shows the same diff to whoever decides from a terminal
    from typer.testing import CliRunner

    from costwarden.agent.cli.main import app

    listed = CliRunner().invoke(app, ["approvals", "list", "--state-dir", str(settings.state_dir), "-f", "json"])
    assert listed.exit_code == 0, listed.output
    assert [i["diff"] for i in json.loads(listed.stdout) if i["action_id"] == a.id] == [a.args["diff"]]

    store = Store(settings.db_url)
    try:
        assert decide(settings, store, a.id, actor="slack:U0ALICE", decision="approve") == "approved"
        row = store.get_action(a.id)
        assert row.status == "done", row.error
        branch = a.args["branch"]
        assert branch.startswith("costwarden/route-model/helpdesk-")
        assert refs(remote)[f"refs/heads/{branch}"] == row.after_state["commit"]
        assert refs(remote)["refs/heads/main"] == before["refs/heads/main"]  # main itself is never touched
        assert len(pushes(remote)) == 1
        # the commit changes exactly the approved diff, on top of main
        shown = git("--git-dir", str(remote), "diff", "main", branch)
        assert "-      model: openai/gpt-4o\n+      model: openai/gpt-4o-mini" in shown
        assert git("--git-dir", str(remote), "rev-parse", f"{branch}^").strip() == before["refs/heads/main"]
        # the pull request, as GitHub documents the call
        posts = [r for r in github.requests if r["method"] == "POST"]
        assert len(posts) == 1 and posts[0]["path"] == f"/repos/{GH_REPO}/pulls"
        assert posts[0]["body"]["head"] == branch and posts[0]["body"]["base"] == "main"
        assert posts[0]["headers"]["Authorization"] == f"Bearer {GH_TOKEN}"
        assert posts[0]["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
        assert row.after_state["pull_request_url"] == github.pulls[0]["html_url"]
        # what realized-savings measurement needs: the feature, the old and new model, when it was applied
        assert row.after_state["feature"] == "helpdesk" and row.after_state["applied_at"]
        assert row.after_state["routes"] == [{"from_model": "gpt-4o", "to_model": "gpt-4o-mini"}]

        # executed again (a replayed approval, a second replica): the claim refuses it
        planned = PlannedAction(id=row.id, finding_id=row.finding_id, policy=row.policy, action=row.action,
                                tool=row.tool, args=row.args, projected_monthly_savings_usd=row.projected_monthly_savings_usd,
                                resource_key=row.resource_key, decision=row.decision, status=row.status)
        assert execute_action(store, Providers(settings, dry_run=False), planned, run_id=row.run_id,
                              policy_hash="h") == "already-claimed"
        # and the tool itself, run again past the claim, finds its branch and pull request: no second push or POST
        out = route_run(GatewayClients(settings.gateway, dry_run=False), **row.args)
        assert out.ok and out.after["commit"] == row.after_state["commit"]
        assert len(pushes(remote)) == 1 and len([r for r in github.requests if r["method"] == "POST"]) == 1
        # a token never reaches the database
        assert GH_TOKEN not in json.dumps([row.args, row.after_state, row.before_state])
    finally:
        store.close()


def test_dry_run_pushes_nothing_and_posts_nothing_even_when_the_tool_is_called(
        tmp_path, remote, github, no_costwarden_env):
    before = refs(remote)
    settings, policies = world(tmp_path, remote, github, None, dry_run=True)
    result = run_sweep(settings, policies, dry_run=True)
    a = helpdesk(result)
    assert a.status == "dry_run" and a.args["diff"]  # the audit still shows the change
    assert result.refused_calls == {}
    from costwarden.agent.reports.output import render_markdown

    md = render_markdown(result)
    assert "## Proposed changes" in md and f"```diff\n{a.args['diff'].strip()}\n```" in md
    # below the agent: the transport refuses the push before any git process starts ...
    clients = GatewayClients(settings.gateway, dry_run=True)
    with pytest.raises(DryRunViolation, match="git.push"):
        route_run(clients, **a.args)
    assert clients.log.refused == {"git.push": 1}
    # ... and the POST before any request leaves the process (the branch made to exist, to get that far)
    git("--git-dir", str(remote), "branch", a.args["branch"], "main")
    before = refs(remote)
    with pytest.raises(DryRunViolation, match="github.POST"):
        route_run(clients, **a.args)
    assert refs(remote) == before and pushes(remote) == []
    assert [r["method"] for r in github.requests] == ["GET"]  # the lookup of an existing pull request only


def test_a_protected_feature_is_never_touched(tmp_path, remote, github, slack, no_costwarden_env):
    before = refs(remote)
    settings, policies = world(tmp_path, remote, github, slack, dry_run=False, protected="{feature: helpdesk}")
    result = run_sweep(settings, policies, dry_run=False)
    assert not [a for a in result.actions if a.tool == TOOL]  # protected resources are left out before planning
    assert not [f for f in result.findings if f.resource_id == "helpdesk"]
    assert [m for m, _ in slack.calls if m == "chat.postMessage"] == []
    assert refs(remote) == before and pushes(remote) == [] and github.requests == []


def test_a_config_changed_after_approval_is_not_overwritten(tmp_path, remote, github, no_costwarden_env):
    settings, policies = world(tmp_path, remote, github, None, dry_run=False, pr=False)
    a = helpdesk(run_sweep(settings, policies, dry_run=False))
    work = tmp_path / "person"
    git("clone", "--quiet", str(remote), str(work))
    cfg = work / CONFIG_PATH
    cfg.write_text(cfg.read_text().replace("num_retries: 2", "num_retries: 3").replace(
        "model: openai/gpt-4o\n", "model: openai/gpt-4o  # pinned\n", 1))
    git("-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "--quiet", "-am", "pin", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    n = len(pushes(remote))
    store = Store(settings.db_url)
    try:
        decide(settings, store, a.id, actor="cli:ops", decision="approve")
        row = store.get_action(a.id)
        assert row.status == "failed" and "changed on 'main' since the change was approved" in row.error
    finally:
        store.close()
    assert len(pushes(remote)) == n and f"refs/heads/{a.args['branch']}" not in refs(remote)


@pytest.mark.parametrize("case, expected", [
    ("missing", "litellm/config.yaml: no such file on branch 'main'"),
    ("malformed", "litellm/config.yaml: not valid YAML (line 4): expected the node content"),
    ("not-found", "feature 'helpdesk' not found"),
])
def test_bad_gateway_configs_are_one_line_plan_errors(tmp_path, remote, github, no_costwarden_env, case, expected):
    work = tmp_path / "person"
    git("clone", "--quiet", str(remote), str(work))
    cfg = work / CONFIG_PATH
    if case == "missing":
        git("rm", "--quiet", CONFIG_PATH, cwd=work)
    elif case == "malformed":
        cfg.write_text("model_list:\n  - model_name: helpdesk\n    litellm_params: {model: [\n")
    else:
        cfg.write_text(cfg.read_text().replace("model_name: helpdesk ", "model_name: support "))
    git("-c", "user.name=P", "-c", "user.email=p@example.com", "commit", "--quiet", "-am", case, cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    settings, policies = world(tmp_path, remote, github, None, dry_run=True)
    result = run_sweep(settings, policies, dry_run=True)
    assert not [a for a in result.actions if a.tool == TOOL]
    (line,) = [e for e in result.errors if "route-model" in e]
    assert expected in line and "\n" not in line and "Traceback" not in line
    assert line.startswith("plan: policy 'right-size-models', action 'route-model', helpdesk: gateway config")


def test_without_a_gateway_repository_the_proposal_is_reported_only(tmp_path, remote, github, no_costwarden_env):
    settings, policies = world(tmp_path, remote, github, None, dry_run=False)
    settings = settings.model_copy(update={"gateway": GatewaySettings()})
    a = helpdesk(run_sweep(settings, policies, dry_run=False))
    assert a.decision == "report" and "gateway.repo is not set" in a.reason and "diff" not in a.args
    assert github.requests == [] and pushes(remote) == []


def test_the_plan_only_answers_oversized_model_findings(tmp_path, remote, github, no_costwarden_env):
    """The policy's other filter (spend-anomaly) finds things too; they get no route-model proposal and no error."""
    settings, policies = world(tmp_path, remote, github, None, dry_run=True)
    result = run_sweep(settings, policies, dry_run=True)
    detectors = {f.id: f.detector for f in result.findings}
    assert "spend-anomaly" in detectors.values()
    assert {detectors[a.finding_id] for a in result.actions} == {"oversized-model"}
    assert not result.errors


def test_no_process_is_left_behind_and_no_scratch_clone_remains(tmp_path, remote, github, no_costwarden_env):
    import tempfile

    root = Path(tempfile.gettempdir())
    before = {p.name for p in root.glob("costwarden-gateway-*")}
    settings, policies = world(tmp_path, remote, github, None, dry_run=True)
    run_sweep(settings, policies, dry_run=True)
    assert {p.name for p in root.glob("costwarden-gateway-*")} == before
    assert os.environ.get(TOKEN_ENV) == GH_TOKEN  # read from the environment, never written anywhere


class Crash(BaseException):
    """The process dying mid-action (not an Exception: nothing catches it)."""


def test_a_crash_between_push_and_pull_request_is_finished_at_start_up_without_a_second_push(
        tmp_path, remote, github, monkeypatch, no_costwarden_env):
    from costwarden.agent.engine.reconcile import reconcile_pending
    from costwarden.tools.gateway.github import GitHubClient

    settings, policies = world(tmp_path, remote, github, None, dry_run=False)
    a = helpdesk(run_sweep(settings, policies, dry_run=False))
    store = Store(settings.db_url)
    try:
        store.set_action_status(a.id, "approved")
        a.status = "approved"

        def die(*_args, **_kwargs):
            raise Crash()

        with monkeypatch.context() as m:
            m.setattr(GitHubClient, "create_pull", die)
            with pytest.raises(Crash):
                execute_action(store, Providers(settings, dry_run=False), a, run_id="r", policy_hash="h")
        assert store.get_action(a.id).status == "pending" and len(pushes(remote)) == 1 and github.pulls == []

        counts = reconcile_pending(store, Providers(settings, dry_run=False), policies={p.name: p for p in policies})
        assert counts["resumed"] == 1
        row = store.get_action(a.id)
        assert row.status == "done" and row.after_state["pull_request_url"] == github.pulls[0]["html_url"]
        assert len(pushes(remote)) == 1 and len(github.pulls) == 1  # the branch was found, not pushed again
    finally:
        store.close()


def test_once_merged_and_its_branch_deleted_the_change_still_reads_as_applied(tmp_path, remote, github,
                                                                              no_costwarden_env):
    from costwarden.tools.gateway.route import is_done, observe

    settings, policies = world(tmp_path, remote, github, None, dry_run=False, pr=False)
    a = helpdesk(run_sweep(settings, policies, dry_run=False))
    store = Store(settings.db_url)
    try:
        decide(settings, store, a.id, actor="cli:ops", decision="approve")
        row = store.get_action(a.id)
    finally:
        store.close()
    clients = GatewayClients(settings.gateway, dry_run=True)  # observing is reading: dry-run clients suffice
    assert is_done(observe(clients, **row.args)) and observe(clients, **row.args)["state"] == "pushed"
    branch = f"refs/heads/{row.args['branch']}"
    git("--git-dir", str(remote), "update-ref", "refs/heads/main", row.after_state["commit"])  # merged
    git("--git-dir", str(remote), "update-ref", "-d", branch)  # and the branch deleted
    state = observe(clients, **row.args)
    assert state["state"] == "on-base" and is_done(state)
    git("--git-dir", str(remote), "update-ref", "refs/heads/main", row.args["base_commit"])  # reverted
    state = observe(clients, **row.args)
    assert state["state"] == "absent" and not is_done(state)


@pytest.mark.parametrize("cap, decision, pushed", [(50, "needs_approval", 0), (100000, "auto", 1)])
def test_auto_mode_acts_within_the_monthly_cap_and_asks_above_it(tmp_path, remote, github, no_costwarden_env,
                                                                 cap, decision, pushed):
    settings, policies = world(tmp_path, remote, github, None, dry_run=False, pr=False, mode="auto", cap=cap)
    a = helpdesk(run_sweep(settings, policies, dry_run=False))
    assert a.decision == decision and (decision == "auto") == (a.status == "done")
    assert len(pushes(remote)) == pushed and github.requests == []
