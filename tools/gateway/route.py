"""`llm.feature.route_model`: move a feature from a flagship to a small model in the LiteLLM
router config, the GitOps way (a commit on a new branch, pushed; optionally a pull request).

Three steps, each its own function, on the clients of GatewayClients:
- `prepare` (at plan time, dry-run too: it only clones and reads) computes the change and its
  diff from the base branch as it is now; both go into the action's args, so the person who
  approves sees exactly what will be pushed;
- `run` (after approval) makes that commit and pushes it, but only if the config still gives the
  same diff (a config edited since is never overwritten with a change nobody saw); a branch
  already on the remote is not pushed again, and a pull request already open is not opened again;
- `observe` reads the remote: the branch and its pull request, so a crash between push and
  record is settled from the remote's state, and a run cut off before its pull request is finished.

The branch name is derived from the base commit and the diff: the same change from the same base
is the same branch, whichever action or replica gets to it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from costwarden.state.clock import utcnow
from costwarden.tools.calls import CallLog
from costwarden.tools.errors import ToolError
from costwarden.tools.gateway.git import GitTransport, call_log
from costwarden.tools.gateway.github import GitHubClient
from costwarden.tools.gateway.litellm_config import GatewayConfigError, Route, reroute, unified_diff
from costwarden.tools.gateway.settings import GatewaySettings
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool

TOOL = "llm.feature.route_model"
NOT_CONFIGURED = ("gateway.repo is not set: the change cannot be shown as a diff or applied; set gateway.repo "
                  "(and gateway.config_path) to the repository holding the LiteLLM config")


@dataclass
class GatewayClients:
    """What route-model talks to: the git remote, and GitHub's API when a pull request is wanted."""

    settings: GatewaySettings
    dry_run: bool
    log: CallLog = field(default_factory=call_log)
    _git: GitTransport | None = None

    @property
    def git(self) -> GitTransport:
        if self._git is None:
            self._git = GitTransport(dry_run=self.dry_run, log=self.log,
                                     author=(self.settings.author_name, self.settings.author_email))
        return self._git

    def github(self) -> GitHubClient:
        token = os.environ.get(self.settings.github_token_env)
        return GitHubClient(self.settings.github_api_url, token, dry_run=self.dry_run, log=self.log)


def _routes(args: dict[str, Any]) -> list[Route]:
    return [Route(r["from_model"], r["to_model"]) for r in args["routes"]]


def _base(clients: GatewayClients, repo: str, config_path: str, base: str) -> tuple[str, str]:
    """(commit, config text) of the base branch as it is now."""
    git = clients.git
    local = git.read_at(repo, base, config_path)  # a repository on this machine: read in place, no clone
    if local is not None:
        commit, text = local
    else:
        with git.scratch_clone(repo, base) as clone:
            text, commit = git.read(clone, config_path), git.head(clone)
    if text is None:
        raise GatewayConfigError(f"gateway config {config_path}: no such file on branch {base!r} of {repo}")
    return commit, text


def _change(clients: GatewayClients, repo: str, config_path: str, base: str, feature: str,
            routes: list[Route]) -> tuple[str, str, Any]:
    """(base commit, diff, Rerouted) of the change on the base branch as it is now."""
    commit, text = _base(clients, repo, config_path, base)
    result = reroute(text, config_path, feature, routes)
    return commit, unified_diff(text, result.text, config_path), result


def prepare(clients: GatewayClients, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The args completed with where and what (repo, branch, the diff); a reason to only report, or ''."""
    s = clients.settings
    if not s.configured:
        return args, NOT_CONFIGURED
    assert s.repo is not None
    base_commit, diff, result = _change(clients, s.repo, s.config_path, s.base_branch, args["feature"], _routes(args))
    out = {**args, "repo": s.repo, "config_path": s.config_path, "base_branch": s.base_branch}
    if result.already:
        return out, f"{args['feature']} already reaches the small model in {s.config_path}: nothing to change"
    digest = hashlib.sha256(f"{base_commit}\n{diff}".encode()).hexdigest()[:10]
    out.update(base_commit=base_commit, diff=diff, changes=result.changes,
               branch=f"{args.get('branch_prefix') or 'costwarden/route-model/'}{args['feature']}-{digest}")
    if args.get("pull_request"):
        if not s.github_repo:
            raise ToolError("gateway.github_repo is not set, and the route-model action asks for a pull request")
        out["github_repo"] = s.github_repo
    return out, ""


def _title(args: dict[str, Any]) -> str:
    moves = ", ".join(f"{r['from_model']} -> {r['to_model']}" for r in args["routes"])
    return f"costwarden: route {args['feature']} to a smaller model ({moves})"


def _body(args: dict[str, Any]) -> str:
    lines = [f"Costwarden found that most of `{args['feature']}`'s requests are short and simple, and proposes "
             "routing them to a smaller model:", ""]
    lines += [f"- {r['from_model']} -> {r['to_model']}: projected saving ${float(r.get('monthly_saving_usd', 0)):,.2f}"
              "/month" for r in args["routes"]]
    lines += ["", "```diff", args.get("diff", "").rstrip("\n"), "```"]
    return "\n".join(lines)


def observe(clients: GatewayClients, **args: Any) -> dict[str, Any]:
    """The branch on the remote (and its pull request, when one is wanted): what has been applied."""
    state: dict[str, Any] = {"feature": args["feature"], "routes": [
        {"from_model": r["from_model"], "to_model": r["to_model"]} for r in args["routes"]]}
    if not args.get("branch"):
        return {**state, "state": "unplanned"}
    commit = clients.git.remote_branch(args["repo"], args["branch"])
    state.update(branch=args["branch"], commit=commit, state="pushed" if commit else "absent")
    if commit is None and _on_base(clients, args):  # merged, and the branch deleted (GitHub's default)
        return {**state, "state": "on-base"}
    if commit and args.get("pull_request"):
        gh = clients.github()
        try:
            pull = gh.find_pull(args["github_repo"], args["branch"])
        finally:
            gh.close()
        state["pull_request_url"] = pull.get("html_url") if pull else None
    return state


def _on_base(clients: GatewayClients, args: dict[str, Any]) -> bool:
    """Whether the base branch's config already sends the feature to the small model(s)."""
    try:
        _commit, text = _base(clients, args["repo"], args["config_path"], args["base_branch"])
        return reroute(text, args["config_path"], args["feature"], _routes(args)).already
    except ToolError:
        return False  # unreadable now: not known to be applied


def is_done(state: dict[str, Any]) -> bool:
    """Pushed (with its pull request, when one is wanted), or already on the base branch."""
    if state.get("state") == "on-base":
        return True
    return state.get("state") == "pushed" and ("pull_request_url" not in state or bool(state["pull_request_url"]))


def run(clients: GatewayClients, **args: Any) -> ToolOutcome:
    """Commit and push the approved change (once), then open its pull request if asked (once)."""
    if not args.get("branch"):
        raise ToolError(f"route-model {args.get('feature')}: the action was planned without a gateway repository "
                        "(gateway.repo); nothing to apply")
    git, repo, branch = clients.git, args["repo"], args["branch"]
    commit = git.remote_branch(repo, branch)
    if commit is None:
        with git.scratch_clone(repo, args["base_branch"]) as clone:
            text = git.read(clone, args["config_path"])
            if text is None:
                raise GatewayConfigError(f"gateway config {args['config_path']}: no longer on branch "
                                         f"{args['base_branch']!r} of {repo}; not applied")
            result = reroute(text, args["config_path"], args["feature"], _routes(args))
            if unified_diff(text, result.text, args["config_path"]) != args["diff"]:
                raise ToolError(f"gateway config {args['config_path']} changed on {args['base_branch']!r} since "
                                "the change was approved; not pushing a diff nobody saw (the next sweep proposes "
                                "it again)")
            commit = git.commit_file(clone, args["config_path"], result.text, _title(args) + "\n\n" + _body(args))
            git.push(clone, repo, commit, branch)
    after = {**observe(clients, **{**args, "pull_request": False}), "applied_at": utcnow().isoformat(),
             "repo": repo, "config_path": args["config_path"], "base_branch": args["base_branch"]}
    if after.get("commit") != commit:
        return ToolOutcome(False, after, f"branch {branch} is not at the pushed commit {commit[:12]}")
    if args.get("pull_request"):
        gh = clients.github()
        try:
            pull = gh.find_pull(args["github_repo"], branch) or gh.create_pull(
                args["github_repo"], head=branch, base=args["base_branch"], title=_title(args), body=_body(args))
        finally:
            gh.close()
        after["pull_request_url"] = pull.get("html_url")
    return ToolOutcome(True, after)


register_tool(ToolSpec(name=TOOL, provider="gateway", run=run, observe=observe, is_done=is_done, resume=True,
                       prepare=prepare))
