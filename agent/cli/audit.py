"""`costwarden audit`: one dry-run sweep, printed as a table or written as JSON, Markdown or HTML."""

from __future__ import annotations

import atexit
import gc
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from costwarden.agent.cli.options import ConfigOpt, DemoOpt, PolicyOpt, StateOpt, cli_settings, err, progress_printer


class AuditFormat(str, Enum):
    """`audit` also writes the self-contained HTML report (agent/reports/templates/audit.html.j2)."""

    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


@contextmanager
def fewer_collections(demo: bool) -> Iterator[None]:
    """Collect garbage cycles less often while the command runs, and not at all at exit.

    An audit builds a large heap that lives until the end (SDKs, service models, the inventory) and
    makes little cyclic garbage. With Python's default thresholds (a young collection every 700
    allocations) full collections re-scanned that heap a dozen times: ~2.5 s of the 12 s demo audit.
    So what is loaded when the command starts is frozen (never re-scanned), young collections wait
    for 10,000 allocations, and the demo, whose estate is small and fixed, collects none (its few
    cycles wait for the exit: ~0.5 s less CPU, no measurable memory). At exit the interpreter
    traverses the whole heap again (2-3 s) only to free what the OS frees anyway; freezing it first
    (atexit runs before that collection) skips the traversal. Everything is restored on the way
    out, so a test that calls the command in-process keeps its own settings.
    """
    old, enabled = gc.get_threshold(), gc.isenabled()
    gc.freeze()
    gc.set_threshold(max(old[0], 10_000), *old[1:])
    if demo:
        gc.disable()
    _freeze_at_exit()
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if enabled:
            gc.enable()
        gc.unfreeze()


@cache
def _freeze_at_exit() -> None:
    atexit.register(gc.freeze)  # once a process


def demo_packs(demo: bool) -> list[Path]:
    """With --demo and no policy of the user's: every pack that ships (the default pack and the AWS
    estate pack), so the demo shows each detector at work; otherwise the loader's default."""
    from costwarden.policies.loader import default_pack_path

    return [default_pack_path().parent] if demo else []


def audit(config: ConfigOpt = None, policy: PolicyOpt = None, demo: DemoOpt = False, state_dir: StateOpt = None,
          fmt: Annotated[AuditFormat, typer.Option("--format", "-f", help="Output format.")] = AuditFormat.table,
          output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to FILE.")] = None,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
          as_of: Annotated[Optional[str], typer.Option(
              "--as-of", help="Analyse billing as of the end of DATE (YYYY-MM-DD, UTC): any closed period.")] = None,
          ) -> None:
    """One dry-run sweep: find waste and show what would be done. Changes nothing, ever."""
    with fewer_collections(demo):
        _audit(config, policy, demo, state_dir, fmt, output, quiet, as_of)


def _audit(config: Optional[Path], policy: Optional[list[Path]], demo: bool, state_dir: Optional[Path],
           fmt: AuditFormat, output: Optional[Path], quiet: bool, as_of: Optional[str]) -> None:
    from costwarden.agent.cli.report import parse_as_of
    from costwarden.agent.engine.sweep import run_sweep
    from costwarden.agent.reports.output import render_html, render_json, render_markdown, render_table
    from costwarden.policies.loader import load_policies

    if demo:
        from costwarden.agent.cli.demo import enter_demo_estate, require_demo_extra

        require_demo_extra()
    now = parse_as_of(as_of)  # None: the wall clock
    settings = cli_settings(config, state_dir, policy)
    policies = load_policies(list(settings.policies) or demo_packs(demo))
    if fmt is AuditFormat.html:
        from costwarden.agent.reports.charts import require_charts

        require_charts()
    progress = progress_printer(quiet)
    with ExitStack() as stack:
        if demo:
            progress("demo: starting moto on 127.0.0.1 and seeding the demo estate (14 days of hourly metrics)")
            settings = enter_demo_estate(stack, settings)
        result = run_sweep(settings, policies, dry_run=True, trigger="audit", progress=progress, now=now,
                           inline=True)  # one shot: no LangGraph import (agent/engine/inline.py)
        sections = None
        if fmt is not AuditFormat.table:  # inside the stack: the demo's billing files are gone after it
            from costwarden.agent.reports.sections import build_sections
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
