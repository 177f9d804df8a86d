"""`costwarden policies validate|schema|permissions`: check policy files, print the vocabulary they may
use, and the cloud permissions they need."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from costwarden.agent.cli.options import ConfigOpt, PolicyOpt, cli_settings, err

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


@policies_app.command("import-c7n")
def policies_import_c7n(
    file: Annotated[Path, typer.Argument(help="A Cloud Custodian policy file (YAML).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the policies here, not to stdout.")] = None,
) -> None:
    """Convert Cloud Custodian policies; list, line by line, what could not be converted and why.

    Exit 0 when every policy converted, 1 when some could not (they are listed), 2 on a bad file.
    """
    import yaml
    from rich.markup import escape

    from costwarden.policies.c7n.convert import convert_document
    from costwarden.policies.yamlsrc import load_located_yaml

    result = convert_document(load_located_yaml(file))
    text = yaml.safe_dump({"policies": result.policies}, sort_keys=False, allow_unicode=True) if result.policies else ""
    header = f"# Converted from {file.name} by `costwarden policies import-c7n`\n"
    if output is not None and text:
        output.write_text(header + text, encoding="utf-8")
    elif text:
        sys.stdout.write(header + text)
    for line in result.not_converted:
        err.print(f"[red]not converted[/] {escape(line.render(str(file)))}")
    for line in result.notes:
        err.print(f"[yellow]note[/] {escape(line.render(str(file)))}")
    err.print(f"{len(result.policies)} of {result.total} policies converted"
              + (f"; written to {output}" if output is not None and text else ""))
    if len(result.policies) < result.total:
        raise typer.Exit(1)


class Cloud(str, Enum):
    aws = "aws"
    gcp = "gcp"


@policies_app.command("permissions")
def policies_permissions(
        policy: PolicyOpt = None, config: ConfigOpt = None,
        cloud: Annotated[Cloud, typer.Option("--cloud", help=(
            "aws: an IAM policy document (JSON); gcp: a custom role definition (YAML) for "
            "`gcloud iam roles create --file`."))] = Cloud.aws,
        read_only: Annotated[bool, typer.Option("--read-only", help=(
            "Only the reads: enough for `audit` and a dry-run daemon, no action's write."))] = False,
) -> None:
    """Print the least-privilege permissions of a policy set, from what its filters, actions and
    collectors declare; with --config, also those its settings turn on (organizations, price list,
    Cost Explorer, s3:// billing paths)."""
    from costwarden.policies.loader import load_policies
    from costwarden.policies.permissions import gcp_role, needed, render_iam, settings_features

    features = settings_features(cli_settings(config, None, policy)) if config else []
    need = needed(load_policies(list(policy or [])), settings=features)
    other = Cloud.gcp if cloud is Cloud.aws else Cloud.aws
    if need.cloud(other.value):
        err.print(f"these policies also need {other.value.upper()} permissions: add --cloud {other.value}")
    if cloud is Cloud.aws:
        sys.stdout.write(render_iam(need, read_only=read_only))
    elif need.cloud("gcp", read_only=read_only):
        sys.stdout.write(gcp_role(need, read_only=read_only))
    else:
        err.print("these policies need no GCP permission")
