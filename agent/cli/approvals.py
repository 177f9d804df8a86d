"""`costwarden approvals list|approve|reject`: the actions waiting for a human, decided from a terminal.

A decision made here goes through the same path as a Slack click (engine/approvals.py): the
approval is claimed atomically in the store, then the paused thread resumes.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from costwarden.agent.cli.options import ConfigOpt, StateOpt, cli_settings

approvals_app = typer.Typer(no_args_is_help=True, help="Actions waiting for a human: list, approve, reject; undo an executed one.")


class Format(str, Enum):
    """As before the CLI was split: `markdown` is accepted and prints the table."""

    table = "table"
    json = "json"
    markdown = "markdown"


def _operator() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli:unknown"


@approvals_app.command("list")
def approvals_list(config: ConfigOpt = None, state_dir: StateOpt = None,
                   fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table) -> None:
    """Actions waiting for a human, oldest first (including any whose Slack message failed)."""
    from costwarden.state.store import Store

    settings = cli_settings(config, state_dir, None)
    rows = Store(settings.db_url).pending_approvals()
    items = [{"action_id": a.id, "policy": a.policy, "action": a.action, "resource": a.resource_key,
              "projected_monthly_savings_usd": float(a.projected_monthly_savings_usd), "reason": a.reason,
              "requested_at": str(ap.requested_at), "expires_at": str(ap.expires_at) if ap.expires_at else None,
              "approvals": f"{len(ap.votes or [])}/{ap.required}", "slack_message": bool(ap.message_ts),
              **({"diff": a.args["diff"]} if (a.args or {}).get("diff") else {})}  # a config change (route-model)
             for ap, a in rows]
    if fmt is Format.json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title=f"{len(items)} actions waiting for approval")
    for col in ("action_id", "policy", "action", "resource", "projected_monthly_savings_usd", "approvals", "expires_at"):
        table.add_column(col.replace("_", " "), overflow="fold")
    for i in items:
        table.add_row(i["action_id"], i["policy"], i["action"], i["resource"],
                      f"${i['projected_monthly_savings_usd']:,.2f}", i["approvals"], i["expires_at"] or "never")
    Console().print(table)
    for i in items:
        if "diff" in i:
            Console().print(f"Proposed change of {i['action_id']} ({i['action']}):", markup=False)
            Console().print(i["diff"].rstrip("\n"), markup=False, highlight=False)


def _decide(action_id: str, decision: str, config: Path | None, state_dir: Path | None) -> None:
    from costwarden.agent.engine.approvals import decide
    from costwarden.state.store import Store

    settings = cli_settings(config, state_dir, None)
    store = Store(settings.db_url)
    if store.get_approval(action_id) is None:
        from costwarden.agent.config import ConfigError

        raise ConfigError("approvals", f"no approval request for action {action_id!r}; see `costwarden approvals list`")
    outcome = decide(settings, store, action_id, actor=_operator(), decision=decision)
    row = store.get_action(action_id)
    sys.stdout.write(f"{action_id}: {outcome}; action status {row.status if row else '?'}\n")
    if outcome not in ("approved", "rejected", "recorded"):
        raise typer.Exit(1)


@approvals_app.command("approve")
def approvals_approve(action_id: str, config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """Approve an action: resumes its paused thread, which executes it through the guarded tool."""
    _decide(action_id, "approve", config, state_dir)


@approvals_app.command("reject")
def approvals_reject(action_id: str, config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """Reject an action: recorded, and nothing is executed."""
    _decide(action_id, "reject", config, state_dir)


@approvals_app.command("undo")
def approvals_undo(action_id: str, config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """Undo an executed action (cap-spend: restore the recorded previous limits); logged as stage `undo`."""
    from costwarden.agent.engine.context import Providers
    from costwarden.agent.engine.undo import undo_action
    from costwarden.state.store import Store

    settings = cli_settings(config, state_dir, None)
    store = Store(settings.db_url)
    try:
        outcome = undo_action(store, Providers(settings, dry_run=settings.dry_run), action_id, actor=_operator())
    finally:
        store.close()
    sys.stdout.write(f"{action_id}: undo {outcome}\n")
    if outcome != "done":
        raise typer.Exit(1)
