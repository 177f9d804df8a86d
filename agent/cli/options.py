"""What the command groups share: the common options, the stderr console, settings from flags.

Only typer and rich are imported here: `costwarden --help` must stay fast, so every command
imports what it works with inside its own body.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

if TYPE_CHECKING:
    from costwarden.agent.config import Settings

err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.", envvar="COSTWARDEN_CONFIG")]
PolicyOpt = Annotated[Optional[list[Path]], typer.Option("--policy", "-p", help="Policy file or directory (repeatable); default: the shipped pack.")]
DemoOpt = Annotated[bool, typer.Option("--demo", help="Run against the built-in demo estate (moto, in-process).")]
StateOpt = Annotated[Optional[Path], typer.Option("--state-dir", help="Where the SQLite database and checkpoints live.")]


def cli_settings(config: Path | None, state_dir: Path | None, policy: list[Path] | None, **flags: Any) -> Settings:
    """The config file and environment, with the command line's --state-dir, --policy and `flags` on top.

    `flags` (settings field -> value, None for "not given") are validated by the settings model's own
    field rules, so `--interval-minutes 0` fails exactly as COSTWARDEN_SWEEP_INTERVAL_MINUTES=0 does.
    """
    from costwarden.agent.config import load_settings  # pydantic-settings is not needed to print --help

    overrides: dict[str, Any] = {"state_dir": state_dir, **flags}
    if policy:
        overrides["policies"] = [str(p) for p in policy]
    return load_settings(config, **overrides)


def progress_printer(quiet: bool) -> Callable[[str], None]:
    """Progress lines on stderr (stdout carries the report), or nothing with --quiet."""
    if quiet:
        return lambda _m: None
    return lambda m: err.print(f"[dim]· {m}[/]")
