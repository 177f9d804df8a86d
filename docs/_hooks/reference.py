"""MkDocs hook: the reference pages, generated at build time from costwarden's own code.

The configuration reference is read from the pydantic Settings models, the policy reference from
the policy schema, the detector and action registries, the collectors and the guarded tools, and
the CLI reference from the typer app. Nothing in them is written by hand, so they cannot drift.
"""

from __future__ import annotations

import importlib.resources
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mkdocs.structure.files import File, Files

import cli_md
import permissions_md
from models_md import Section, anchor, docstring_md, escape, field_table, model_doc, sections

PAGES = ("reference/configuration.md", "reference/policies.md", "reference/cli.md", "reference/permissions.md")


@dataclass(frozen=True)
class Code:
    """What the reference reads from costwarden, gathered in one place."""

    settings: type
    policy: type
    detectors: list[tuple[str, type]]
    actions: list[tuple[str, type]]
    resource_types: list[str]
    resource_descriptions: dict[str, str]
    resource_attributes: dict[str, tuple[str, ...]]
    tools: list[str]
    cli: Any
    packs: dict[str, Any]
    collectors: list[tuple[str, Any]]
    loaded_packs: dict[str, list[Any]]  # pack file -> its policies, loaded (the permissions page)


def read_code() -> Code:
    """Every import of costwarden the reference makes. A rename in the code is a one-line fix here."""
    from costwarden.agent.config import Settings
    from costwarden.policies import resources
    from costwarden.policies.registry import actions, detectors, load_builtin
    from costwarden.policies.schema import Policy
    from costwarden.policies.loader import load_policy_file
    from costwarden.tools.collectors import collectors, resource_types
    from costwarden.tools.registry import tool_names

    import typer
    from costwarden.agent.cli.main import app

    load_builtin()
    packs_dir = importlib.resources.files("costwarden.policies") / "packs"
    packs = {p.name: yaml.safe_load(p.read_text()) for p in sorted(packs_dir.iterdir(), key=lambda p: p.name)
             if p.name.endswith((".yml", ".yaml"))}
    return Code(settings=Settings, policy=Policy, detectors=detectors.items(), actions=actions.items(),
                resource_types=resource_types(), resource_descriptions=dict(getattr(resources, "RESOURCE_TYPES", {})),
                resource_attributes=dict(getattr(resources, "RESOURCE_ATTRIBUTES", {})),
                tools=tool_names(), cli=typer.main.get_command(app), packs=packs, collectors=collectors.items(),
                loaded_packs={p.name: load_policy_file(Path(str(p))) for p in sorted(packs_dir.iterdir(), key=lambda p: p.name)
                              if p.name.endswith((".yml", ".yaml"))})


def on_files(files: Files, config: Any) -> Files:
    code = read_code()
    for path, text in ((PAGES[0], configuration_page(code)), (PAGES[1], policies_page(code)),
                       (PAGES[2], cli_page(code)),
                       (PAGES[3], permissions_md.render(code.detectors, code.actions, code.collectors,
                                                        code.loaded_packs))):
        files.append(File.generated(config, path, content=text))
    return files


def _sections_md(top: list[Section], *, level: str = "##", root: str = "") -> str:
    out = []
    for s in top:
        title = f"`{s.key}`" if s.key else "Top level"
        out.append(f"{level} {title} {{#{s.anchor}}}\n")
        doc = model_doc(s.model)
        if doc:
            out.append(doc + "\n")
        out.append(field_table(s, root=root) + "\n")
    return "\n".join(out)


def configuration_page(code: Code) -> str:
    return "\n".join([
        "# Configuration reference\n",
        "Generated from the settings models (`costwarden.agent.config.Settings` and the sections it mounts). "
        "How settings are given (config file, `COSTWARDEN_*` variables, flags) is explained in "
        "[Configuration](../configuration.md).\n",
        "Every key can be set as an environment variable: `COSTWARDEN_` followed by the key's path in capitals, "
        "joined by `__` (`aws.regions` is `COSTWARDEN_AWS__REGIONS`); lists and maps are written as JSON. "
        "Unknown keys are an error.\n",
        _sections_md(sections(code.settings)),
    ])


def policies_page(code: Code) -> str:
    out = [
        "# Policy reference\n",
        "Generated from the policy schema (`costwarden.policies.schema`), the detector and action registries "
        "(`costwarden.policies.registry`), the collectors and the guarded tools. How to write a policy is "
        "explained in [Policies](../concepts/policies.md); `costwarden policies schema` prints the same "
        "vocabulary as JSON Schema.\n",
        "## Policy files {#policy-files}\n",
        "A file holds a top-level `policies:` list. In `filters` and `actions`, each entry is `type:` plus that "
        "filter's or action's parameters below; a bare name such as `- idle-gpu` is short for `- type: idle-gpu`.\n",
        _sections_md(sections(code.policy, "policies[]"), level="###", root="policies[]"),
        resource_types_md(code),
        "## Filters (detectors) {#filters}\n",
    ]
    for name, cls in code.detectors:
        out.append(registered_md("detector", name, cls))
    out.append("## Actions {#actions}\n")
    out.append("A destructive action is never automatic: the guard always asks a person "
               "(see [Safety model](../concepts/safety.md)).\n")
    for name, cls in code.actions:
        out.append(registered_md("action", name, cls))
    out.append(packs_md(code))
    out.append("## Guarded tools {#tools}\n")
    out.append("The cloud calls actions make, each registered with an `observe` read that start-up "
               "reconciliation uses (`costwarden.tools.registry`):\n")
    out.append("\n".join(f"- `{t}`" for t in code.tools) + "\n")
    return "\n".join(out)


def resource_types_md(code: Code) -> str:
    rows = ["## Resource types {#resource-types}\n",
            "The values of a policy's `resource`: one read-only collector each (`costwarden.tools.collectors`).\n",
            "`value`, `and`, `or` and `not` apply to every type; a `value` filter's key reads the core fields "
            "(`resource_id`, `kind`, `state`, `region`, `account`, `provider`, `resource_type`, `tags`) and the "
            "attributes below ([Filters](../concepts/filters.md)).\n",
            "| Resource type | What it is | Attributes | Filters | Actions |", "|---|---|---|---|---|"]
    plain = ("value", "and", "or", "not")
    for rt in code.resource_types:
        dets = ", ".join(f"[`{n}`](#detector-{n})" for n, c in code.detectors
                         if rt in c.resource_types and n not in plain) or "-"
        attrs = ", ".join(f"`{a}`" for a in code.resource_attributes.get(rt, ())) or "-"
        acts = ", ".join(f"[`{n}`](#action-{n})" for n, c in code.actions if rt in c.resource_types) or "none"
        rows.append(f"| `{rt}` | {escape(code.resource_descriptions.get(rt, ''))} | {attrs} | {dets} | {acts} |")
    return "\n".join(rows) + "\n"


def registered_md(kind: str, name: str, cls: type) -> str:
    """One filter or action: its resource types, destructiveness, explanation and parameters."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or sys.modules[cls.__module__].__doc__ or "")
    if doc.startswith(f"{name}: "):  # module docstrings open with the name the heading already shows
        doc = doc[len(name) + 2:][:1].upper() + doc[len(name) + 3:]
    facts = ["Resource types: " + ", ".join(f"`{r}`" for r in cls.resource_types) + "."]
    if kind == "action":
        facts.append("**Destructive**: always needs approval (two approvers by default)." if cls.destructive
                     else "Not destructive.")
    top, *nested = sections(cls.Params, "", id_prefix=f"{kind}-{name}-")
    out = [f"### `{name}` {{#{kind}-{name}}}\n", " ".join(facts) + "\n", docstring_md(doc) + "\n",
           field_table(top, prefix_keys=False) + "\n"]
    for s in nested:
        out += [f"#### `{name}`: `{s.key}` {{#{s.anchor}}}\n", model_doc(s.model) + "\n", field_table(s) + "\n"]
    return "\n".join(out)


def packs_md(code: Code) -> str:
    out = ["## Shipped policy packs {#packs}\n",
           "Read from the packs installed with the package (`costwarden/policies/packs/`). `default.yml` is loaded "
           "when no policy is configured; the others are opt-in.\n"]
    for pack, doc in code.packs.items():
        out += [f"### `{pack}` {{#pack-{anchor(pack)}}}\n",
                "| Policy | Resource | Mode | Schedule | Filters | Actions |", "|---|---|---|---|---|---|"]
        for p in (doc or {}).get("policies", []):
            filters = ", ".join(f"`{_type_of(f)}`" for f in p.get("filters", []))
            actions = ", ".join(f"`{_type_of(a)}`" for a in p.get("actions", [])) or "-"
            out.append(f"| `{p['name']}` | `{p['resource']}` | {p.get('mode', 'report')} | "
                       f"{p.get('schedule') or '-'} | {filters} | {actions} |")
        out.append("")
    return "\n".join(out)


def _type_of(entry: Any) -> str:
    """A filter entry's name; a block (`- or: [...]`) with its members, a `tag:K: v` pair as written."""
    if isinstance(entry, str):
        return entry
    if "type" in entry:
        return str(entry["type"])
    key, value = next(iter(entry.items()), ("?", None))
    if isinstance(value, list):
        return f"{key}({', '.join(_type_of(v) for v in value)})"
    return f"{key}: {value}"


def cli_page(code: Code) -> str:
    return "\n".join([
        "# CLI reference\n",
        "Generated from the `costwarden` command line (`costwarden.agent.cli.main`). Bad input ends with one "
        "line on stderr and exit code 2; see [exit codes](../reports.md#exit-codes).\n",
        cli_md.render(code.cli),
    ])
