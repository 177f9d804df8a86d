"""`costwarden policies validate|schema`: check policy files, and print the vocabulary they may use."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from costwarden.agent.cli.options import err

policies_app = typer.Typer(no_args_is_help=True, help="Validate and inspect policy files.")


@policies_app.command("validate")
def policies_validate(files: Annotated[list[Path], typer.Argument(help="Policy files or directories.")]) -> None:
    """Check policy files against the schema and the registry; exit 2 on the first error."""
    from costwarden.policies.loader import load_policies

    loaded = load_policies(list(files))
    for lp in loaded:
        err.print(f"[green]ok[/] {lp.source}: {lp.name} ({lp.policy.resource}, mode {lp.policy.mode}, "
                  f"filters: {', '.join(lp.filter_names)}; actions: {', '.join(a.name for a in lp.actions) or '-'})")
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
