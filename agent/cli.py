"""The `costwarden` command line. Bad input ends with one line on stderr and exit code 2."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from agent import __version__
from agent.config import ConfigError, Settings, load_settings
from policies.errors import PolicyError
from state.store import StoreError
from tools.errors import ToolError

app = typer.Typer(name="costwarden", no_args_is_help=True, add_completion=False,
                  help="Autonomous FinOps agent for AI and cloud spend.")
policies_app = typer.Typer(no_args_is_help=True, help="Validate and inspect policy files.")
app.add_typer(policies_app, name="policies")

err = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.", envvar="COSTWARDEN_CONFIG")]
PolicyOpt = Annotated[Optional[list[Path]], typer.Option("--policy", "-p", help="Policy file or directory (repeatable); default: the shipped pack.")]
DemoOpt = Annotated[bool, typer.Option("--demo", help="Run against the built-in demo estate (moto, in-process).")]
StateOpt = Annotated[Optional[Path], typer.Option("--state-dir", help="Where the SQLite database and checkpoints live.")]


def _settings(config: Path | None, state_dir: Path | None, policy: list[Path] | None) -> Settings:
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
    return settings.model_copy(update=update)


def _progress(quiet: bool) -> Any:
    if quiet:
        return lambda _m: None
    return lambda m: err.print(f"[dim]· {m}[/]")


@app.command()
def audit(config: ConfigOpt = None, policy: PolicyOpt = None, demo: DemoOpt = False, state_dir: StateOpt = None,
          fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
          output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to FILE.")] = None,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False) -> None:
    """One dry-run sweep: find waste and show what would be done. Changes nothing, ever."""
    from agent.output import render_json, render_markdown, render_table
    from agent.sweep import run_sweep
    from policies.loader import load_policies

    settings = _settings(config, state_dir, policy)
    policies = load_policies(list(settings.policies))
    progress = _progress(quiet)
    with ExitStack() as stack:
        if demo:
            from agent.demo import demo_estate

            progress("demo: starting moto on 127.0.0.1 and seeding the demo estate (14 days of hourly metrics)")
            settings = _demo_settings(settings, stack.enter_context(demo_estate()))
        result = run_sweep(settings, policies, dry_run=True, trigger="audit", progress=progress)
    if result.refused_calls:  # the SDK hook refused something: a bug, and the audit says so loudly
        err.print(f"[red]dry-run refused mutating calls: {result.refused_calls}[/]")
    if fmt is Format.table:
        if output:
            with output.open("w", encoding="utf-8") as fh:
                render_table(result, Console(file=fh, width=160, force_terminal=False))
        else:
            render_table(result, Console(width=max(120, Console().width)))
    else:
        text = render_json(result) if fmt is Format.json else render_markdown(result)
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
    from agent.daemon import Daemon, run_once
    from agent.logs import setup_logging
    from policies.loader import load_policies

    settings = _settings(config, state_dir, policy)
    update: dict[str, Any] = {"sweep_interval_minutes": interval_minutes, "http_port": port, "http_host": host}
    if demo and host is None:
        update["http_host"] = "127.0.0.1"
    settings = settings.model_copy(update={k: v for k, v in update.items() if v is not None})
    setup_logging(settings.log_level, json_lines=settings.json_logs)
    policies = load_policies(list(settings.policies))  # fail fast on bad policy files, before anything starts
    with ExitStack() as stack:
        if demo:
            from agent.demo import demo_estate

            settings = _demo_settings(settings, stack.enter_context(demo_estate()))
        if once:
            raise typer.Exit(run_once(settings, policies))
        raise typer.Exit(Daemon(settings, host=settings.http_host, port=settings.http_port).run())


@policies_app.command("validate")
def policies_validate(files: Annotated[list[Path], typer.Argument(help="Policy files or directories.")]) -> None:
    """Check policy files against the schema and the registry; exit 2 on the first error."""
    from policies.loader import load_policies

    loaded = load_policies(list(files))
    for lp in loaded:
        err.print(f"[green]ok[/] {lp.source}: {lp.name} ({lp.policy.resource}, mode {lp.policy.mode}, "
                  f"filters: {', '.join(d.name for d in lp.detectors)}; actions: {', '.join(a.name for a in lp.actions) or '-'})")
    err.print(f"{len(loaded)} policies valid")


@policies_app.command("schema")
def policies_schema() -> None:
    """Print the vocabulary: every filter and action with its parameters (JSON Schema)."""
    from policies.registry import actions, detectors, load_builtin

    load_builtin()
    doc = {"filters": {n: {"resources": list(c.resource_types), "params": c.Params.model_json_schema()}
                       for n, c in detectors.items()},
           "actions": {n: {"resources": list(c.resource_types), "destructive": c.destructive,
                           "params": c.Params.model_json_schema()} for n, c in actions.items()}}
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


from agent.report_cmd import report as _report  # noqa: E402 - the billing/token-economics report

app.command(name="report")(_report)


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
    except (PolicyError, ConfigError, StoreError, ToolError) as exc:
        sys.stderr.write(f"costwarden: error: {exc}\n")  # one line, never wrapped, never a traceback
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
