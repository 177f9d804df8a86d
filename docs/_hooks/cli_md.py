"""The CLI reference, read from the typer app: every command with its help and its options.

Only the click-compatible attributes typer's parameters keep (`opts`, `secondary_opts`, `help`,
`default`, `required`, `is_flag`, `envvar`, `hidden`) are read, through getattr with a fallback,
so a typer upgrade degrades a column rather than breaking the build.
"""

from __future__ import annotations

import enum
import inspect
import typing
from pathlib import PurePath
from typing import Any

from models_md import escape, escape_cell


def commands(group: Any, path: str = "costwarden") -> list[tuple[str, Any]]:
    """(full name, command) pairs, depth first, in the order the app registers them."""
    found: list[tuple[str, Any]] = [(path, group)]
    subs = getattr(group, "commands", None) or {}
    for name, sub in subs.items():
        if getattr(sub, "hidden", False):
            continue
        found += commands(sub, f"{path} {name}")
    return found


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    return getattr(descriptor, "annotation", None)


def _value_hint(param: Any) -> str:
    ann = _annotation(param)
    if typing.get_origin(ann) is list:
        ann = typing.get_args(ann)[0]
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "|".join(str(m.value) for m in ann)
    if isinstance(ann, type) and issubclass(ann, PurePath):
        return "PATH"
    if ann in (int, float):
        return "N"
    return "TEXT" if ann is str else ""


def _default(param: Any) -> str:
    value = getattr(param, "default", None)
    if value is None or getattr(param, "required", False) or (getattr(param, "is_flag", False) and value is False):
        return ""
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{value}`"


def option_rows(cmd: Any) -> list[str]:
    rows = []
    for p in getattr(cmd, "params", []):
        if getattr(p, "hidden", False) or "--help" in (getattr(p, "opts", None) or []):
            continue
        opts = list(getattr(p, "opts", []) or []) + list(getattr(p, "secondary_opts", []) or [])
        if getattr(p, "param_type_name", "option") == "argument":
            name = f"`{(getattr(p, 'name', None) or opts[0]).upper()}`"
        else:
            hint = "" if getattr(p, "is_flag", False) else _value_hint(p)
            name = ", ".join(f"`{o}`" for o in sorted(opts, key=len)) + (f" `{hint}`" if hint else "")
        help_text = " ".join((getattr(p, "help", None) or "").split())
        notes = []
        if getattr(p, "required", False):
            notes.append("required")
        if (getattr(p, "multiple", False) or typing.get_origin(_annotation(p)) is list) \
                and "repeatable" not in help_text:
            notes.append("repeatable")
        envvar = getattr(p, "envvar", None)
        if envvar:
            notes.append(f"env `{envvar}`")
        text = escape(help_text) + (f" ({', '.join(notes)})" if notes else "")
        rows.append(f"| {escape_cell(name)} | {_default(p)} | {text or '-'} |")
    return rows


def render(app_command: Any) -> str:
    """One section per command: its help text, then a table of its arguments and options."""
    out = []
    for name, cmd in commands(app_command):
        subs = getattr(cmd, "commands", None)
        level = "##" if name.count(" ") <= 1 else "###"
        out.append(f"{level} `{name}` {{#{name.replace(' ', '-')}}}\n")
        doc = inspect.cleandoc(getattr(cmd, "help", None) or "")
        if doc:
            out.append(escape(doc, cell=False) + "\n")
        if subs:
            out.append("Commands: " + ", ".join(f"[`{s}`](#{(name + ' ' + s).replace(' ', '-')})"
                                               for s, c in subs.items() if not getattr(c, "hidden", False)) + ".\n")
            continue
        rows = option_rows(cmd)
        if rows:
            out.append("| Option | Default | Meaning |\n|---|---|---|\n" + "\n".join(rows) + "\n")
    return "\n".join(out)
