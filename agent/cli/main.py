"""The `costwarden` command line. Bad input ends with one line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from costwarden.agent import __version__
from costwarden.state.errors import CostwardenError

if TYPE_CHECKING:
    from costwarden.agent.config import Settings

app = typer.Typer(name="costwarden", no_args_is_help=True, add_completion=False,
                  help="Autonomous FinOps agent for AI and cloud spend.")
policies_app = typer.Typer(no_args_is_help=True, help="Validate and inspect policy files.")
app.add_typer(policies_app, name="policies")
approvals_app = typer.Typer(no_args_is_help=True, help="Actions waiting for a human: list, approve, reject.")
app.add_typer(approvals_app, name="approvals")
db_app = typer.Typer(no_args_is_help=True, help="The database schema (Alembic): upgrade, current revision, history.")
app.add_typer(db_app, name="db")

err = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


class AuditFormat(str, Enum):
    """`audit` also writes the self-contained HTML report (agent/reports/html.py)."""

    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.", envvar="COSTWARDEN_CONFIG")]
PolicyOpt = Annotated[Optional[list[Path]], typer.Option("--policy", "-p", help="Policy file or directory (repeatable); default: the shipped pack.")]
DemoOpt = Annotated[bool, typer.Option("--demo", help="Run against the built-in demo estate (moto, in-process).")]
StateOpt = Annotated[Optional[Path], typer.Option("--state-dir", help="Where the SQLite database and checkpoints live.")]


def _settings(config: Path | None, state_dir: Path | None, policy: list[Path] | None) -> Settings:
    from costwarden.agent.config import load_settings  # pydantic-settings is not needed to print --help

    overrides: dict[str, Any] = {"state_dir": state_dir}
    if policy:
        overrides["policies"] = [str(p) for p in policy]
    return load_settings(config, **overrides)


def _demo_settings(settings: Settings, demo: dict[str, Any]) -> Settings:
    aws = settings.aws.model_copy(update={"endpoint_url": demo["endpoint_url"], "regions": demo["regions"]})
    update: dict[str, Any] = {"aws": aws}
    if "billing" in demo:  # the demo's FOCUS export and token-usage log, with its tiers and budgets
        merged = {**settings.billing.model_dump(exclude_unset=True), **demo["billing"]}
        update["billing"] = type(settings.billing).model_validate(merged)
    for section in ("gcp", "prometheus"):  # the demo's GCP project (fake Compute API) and scraped GPU cluster
        if section in demo:
            merged = {**getattr(settings, section).model_dump(exclude_unset=True), **demo[section]}
            update[section] = type(getattr(settings, section)).model_validate(merged)
    if "pricing" in demo:  # the demo cluster's GPU-hour cost; the user's own overrides win
        overrides = {**demo["pricing"]["overrides"], **settings.pricing.overrides}
        update["pricing"] = settings.pricing.model_copy(update={"overrides": overrides})
    return settings.model_copy(update=update)


def _progress(quiet: bool) -> Any:
    if quiet:
        return lambda _m: None
    return lambda m: err.print(f"[dim]· {m}[/]")


@app.command()
def audit(config: ConfigOpt = None, policy: PolicyOpt = None, demo: DemoOpt = False, state_dir: StateOpt = None,
          fmt: Annotated[AuditFormat, typer.Option("--format", "-f", help="Output format.")] = AuditFormat.table,
          output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to FILE.")] = None,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False) -> None:
    """One dry-run sweep: find waste and show what would be done. Changes nothing, ever."""
    from costwarden.agent.reports.output import render_html, render_json, render_markdown, render_table
    from costwarden.agent.engine.sweep import run_sweep
    from costwarden.policies.loader import load_policies

    settings = _settings(config, state_dir, policy)
    policies = load_policies(list(settings.policies))
    if fmt is AuditFormat.html:
        from costwarden.agent.reports.html import require_charts

        require_charts()
    progress = _progress(quiet)
    with ExitStack() as stack:
        if demo:
            from costwarden.agent.demo.estate import demo_estate

            progress("demo: starting moto on 127.0.0.1 and seeding the demo estate (14 days of hourly metrics)")
            settings = _demo_settings(settings, stack.enter_context(demo_estate()))
        result = run_sweep(settings, policies, dry_run=True, trigger="audit", progress=progress)
        sections = None
        if fmt is not AuditFormat.table:  # inside the stack: the demo's billing files are gone after it
            from costwarden.agent.reports.html import build_sections
            from costwarden.state.store import Store

            progress("report: spend, waste by team, GPU profiles, unit economics, realized savings")
            store = Store(settings.db_url)
            try:
                sections = build_sections(result, settings.billing, store=store)
            finally:
                store.close()
    if result.refused_calls:  # the SDK hook refused something: a bug, and the audit says so loudly
        err.print(f"[red]dry-run refused mutating calls: {result.refused_calls}[/]")
    if fmt is AuditFormat.table:
        if output:
            with output.open("w", encoding="utf-8") as fh:
                render_table(result, Console(file=fh, width=160, force_terminal=False))
        else:
            render_table(result, Console(width=max(120, Console().width)))
    else:
        render = {AuditFormat.json: render_json, AuditFormat.markdown: render_markdown,
                  AuditFormat.html: render_html}[fmt]
        text = render(result, sections)
        if output:
            output.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if output:
        err.print(f"report written to {output}")
    if result.errors:
        raise typer.Exit(1)


@app.command()
def run(config: ConfigOpt = None, policy: PolicyOpt = None, demo: DemoOpt = False, state_dir: StateOpt = None,
        once: Annotated[bool, typer.Option("--once", help="Run one sweep of every policy and exit.")] = False,
        port: Annotated[Optional[int], typer.Option(help="HTTP port for /healthz, /readyz, /metrics (0: any free port).")] = None,
        host: Annotated[Optional[str], typer.Option(help="HTTP bind address.")] = None,
        interval_minutes: Annotated[Optional[float], typer.Option(help="Minutes between sweeps of policies without a schedule.")] = None) -> None:
    """Run the daemon: sweep every policy on its schedule, acting within policy limits."""
    from costwarden.agent.server.daemon import Daemon, run_once
    from costwarden.agent.server.logs import setup_logging
    from costwarden.policies.loader import load_policies

    settings = _settings(config, state_dir, policy)
    update: dict[str, Any] = {"sweep_interval_minutes": interval_minutes, "http_port": port, "http_host": host}
    if demo and host is None:
        update["http_host"] = "127.0.0.1"
    settings = settings.model_copy(update={k: v for k, v in update.items() if v is not None})
    setup_logging(settings.log_level, json_lines=settings.json_logs)
    policies = load_policies(list(settings.policies))  # fail fast on bad policy files, before anything starts
    with ExitStack() as stack:
        if demo:
            from costwarden.agent.demo.estate import demo_estate

            settings = _demo_settings(settings, stack.enter_context(demo_estate()))
        if once:
            raise typer.Exit(run_once(settings, policies))
        raise typer.Exit(Daemon(settings, host=settings.http_host, port=settings.http_port).run())


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

    settings = _settings(config, state_dir, None)
    rows = Store(settings.db_url).pending_approvals()
    items = [{"action_id": a.id, "policy": a.policy, "action": a.action, "resource": a.resource_key,
              "projected_monthly_savings_usd": float(a.projected_monthly_savings_usd), "reason": a.reason,
              "requested_at": str(ap.requested_at), "expires_at": str(ap.expires_at) if ap.expires_at else None,
              "approvals": f"{len(ap.votes or [])}/{ap.required}", "slack_message": bool(ap.message_ts)}
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


def _decide(action_id: str, decision: str, config: Path | None, state_dir: Path | None) -> None:
    from costwarden.agent.engine.approvals import decide
    from costwarden.state.store import Store

    settings = _settings(config, state_dir, None)
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


@policies_app.command("validate")
def policies_validate(files: Annotated[list[Path], typer.Argument(help="Policy files or directories.")]) -> None:
    """Check policy files against the schema and the registry; exit 2 on the first error."""
    from costwarden.policies.loader import load_policies

    loaded = load_policies(list(files))
    for lp in loaded:
        err.print(f"[green]ok[/] {lp.source}: {lp.name} ({lp.policy.resource}, mode {lp.policy.mode}, "
                  f"filters: {', '.join(d.name for d in lp.detectors)}; actions: {', '.join(a.name for a in lp.actions) or '-'})")
    err.print(f"{len(loaded)} policies valid")


@policies_app.command("schema")
def policies_schema() -> None:
    """Print the vocabulary: every filter and action with its parameters (JSON Schema)."""
    from costwarden.policies.registry import actions, detectors, load_builtin

    load_builtin()
    doc = {"filters": {n: {"resources": list(c.resource_types), "params": c.Params.model_json_schema()}
                       for n, c in detectors.items()},
           "actions": {n: {"resources": list(c.resource_types), "destructive": c.destructive,
                           "params": c.Params.model_json_schema()} for n, c in actions.items()}}
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """Bring the database to this release's schema; every start-up does the same, so this is for deploy steps."""
    from costwarden.state.store import Store, safe_url

    settings = _settings(config, state_dir, None)
    store = Store(settings.db_url)  # migrates under the migration lock, or refuses a newer schema
    m = store.migration
    store.close()
    what = f"already at {m.after} (head)" if m.path == "head" else f"{m.path}: {m.before or 'empty'} -> {m.after}"
    sys.stdout.write(f"{safe_url(settings.db_url)}: {what}\n")


@db_app.command("current")
def db_current(config: ConfigOpt = None, state_dir: StateOpt = None,
               check: Annotated[bool, typer.Option("--check", help="Exit 1 unless the database is at head.")] = False) -> None:
    """Print the database's schema revision, read-only (nothing is created or migrated)."""
    from costwarden.state.migrate import HEAD, unknown_revision_message
    from costwarden.state.store import safe_url

    settings = _settings(config, state_dir, None)
    state = _schema_state(settings.db_url)
    status = state.status
    what = {"head": f"{HEAD} (head)",
            "behind": f"{', '.join(state.revisions)} (behind: head is {HEAD}; `costwarden db upgrade` or any start-up migrates it)",
            "pre-alembic": f"none: tables from before migrations; the next start-up stamps and upgrades it to {HEAD}",
            "empty": f"none: no Costwarden tables yet; the first start-up creates them at {HEAD}",
            "ahead": unknown_revision_message(state.revisions)}[status]
    sys.stdout.write(f"{safe_url(settings.db_url)}: {what}\n")
    if check and status != "head":
        raise typer.Exit(1)


def _schema_state(url: str) -> Any:
    """Read a database's schema state without creating it (a missing SQLite file stays missing)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    from costwarden.state.migrate import SchemaState, inspect_schema
    from costwarden.state.store import StoreError, safe_url

    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and not Path(url.removeprefix("sqlite:///")).exists():
        return SchemaState((), False, frozenset())
    try:
        engine = create_engine(url)
        try:
            return inspect_schema(engine)
        finally:
            engine.dispose()
    except ImportError as exc:
        raise StoreError(f"cannot open database {safe_url(url)}: driver not installed ({exc})") from None
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise StoreError(f"cannot open database {safe_url(url)}: {str(detail).splitlines()[0]}") from None


@db_app.command("history")
def db_history() -> None:
    """List this release's migrations, oldest first (from the scripts; no database needed)."""
    from costwarden.state.migrate import HEAD, history

    for rev, down, doc in history():
        sys.stdout.write(f"{down or '<base>'} -> {rev}{' (head)' if rev == HEAD else ''}: {doc.splitlines()[0] if doc else ''}\n")


from costwarden.agent.cli.report import report as _report  # noqa: E402 - the billing/token-economics report

app.command(name="report")(_report)

from costwarden.agent.cli.gate import gate as _gate  # noqa: E402 - the pull-request FinOps gate

app.command(name="gate")(_gate)

from costwarden.agent.cli.prices import prices_app  # noqa: E402 - prices show|refresh (AWS Price List API cache)

app.add_typer(prices_app, name="prices")


@app.command()
def version() -> None:
    """Print the version."""
    sys.stdout.write(f"costwarden {__version__}\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point. Usage errors are typer's (exit 2); ours are one line on stderr and exit 2."""
    try:
        app(args=argv, prog_name="costwarden")  # standalone: always ends in SystemExit
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CostwardenError as exc:
        sys.stderr.write(f"costwarden: error: {exc}\n")  # one line, never wrapped, never a traceback
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
