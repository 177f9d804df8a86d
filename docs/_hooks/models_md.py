"""Markdown tables of pydantic models, read from the models themselves so the reference cannot drift.

One table per model: each field's key, type, default and description (from `Field(description=...)`,
with its numeric and length bounds). A field whose type is another model becomes its own section,
linked from the parent's row, so nested config (`aws.organization`, `billing.budgets[]`) reads as
the YAML does.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Section:
    """One model at one place in the document tree, e.g. `aws.organization` or `billing.budgets[]`."""

    key: str
    model: type[BaseModel]
    id_prefix: str = ""  # keeps the ids of two models' nested sections apart on one page

    @property
    def anchor(self) -> str:
        return anchor(self.id_prefix + self.key)


def anchor(key: str) -> str:
    """A heading id from a dotted key: `billing.budgets[]` -> `billing-budgets`."""
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "top-level"


def escape(text: str, *, cell: bool = True) -> str:
    """Make prose safe as Markdown: `<id>` would be read as HTML, and in a table cell a pipe splits
    the cell and a lone `*` may start emphasis. Code spans are left alone (Python-Markdown's tables
    do not split on their pipes)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
        if cell:
            parts[i] = parts[i].replace("|", "\\|").replace("*", "\\*")
    return "`".join(parts)


def docstring_md(doc: str | None) -> str:
    """A docstring as Markdown: HTML-like text escaped, and a blank line before a list that follows text.

    Python-Markdown starts a list only after a blank line; docstrings often omit it."""
    if not doc:
        return ""
    lines: list[str] = []
    for line in inspect.cleandoc(doc).splitlines():
        if line.lstrip().startswith("- ") and lines and lines[-1].strip() and not lines[-1].lstrip().startswith("- ") \
                and not lines[-1].startswith("  "):
            lines.append("")
        lines.append(escape(line, cell=False))
    return "\n".join(lines).strip()


def model_doc(model: type) -> str:
    """The model's own docstring, never one inherited from BaseModel or a base class."""
    return docstring_md(model.__dict__.get("__doc__"))


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    args = typing.get_args(ann)
    if _is_union(ann) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return ann, False


def _is_union(ann: Any) -> bool:
    return typing.get_origin(ann) in (typing.Union, types.UnionType)


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def nested_model(ann: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and how its key continues: '' (one), '[]' (a list), '.<key>' (a map)."""
    ann, _ = _unwrap_optional(ann)
    if _is_model(ann):
        return ann, ""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is list and args and _is_model(args[0]):
        return args[0], "[]"
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return args[1], ".<key>"
    return None


def type_name(ann: Any) -> str:
    """A reader's name for an annotation: `list[str]`, `"tables" | "price-list-api"`, `int | null`."""
    if ann is type(None):
        return "null"
    if ann is typing.Any:
        return "any"
    if _is_union(ann):
        return " | ".join(type_name(a) for a in typing.get_args(ann))
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (list, dict, tuple, set):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if _is_model(ann):
        return "{" + ", ".join(ann.model_fields) + "}"
    if isinstance(ann, type):
        if issubclass(ann, enum.Enum):
            return " | ".join(json.dumps(m.value) for m in ann)
        if issubclass(ann, PurePath):
            return "path"
        if ann is SecretStr:
            return "secret"
        return {"str": "str", "int": "int", "float": "float", "bool": "bool", "time": "time (HH:MM)"}.get(
            ann.__name__, ann.__name__)
    return str(ann).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    try:
        value = field.get_default(call_default_factory=True)
    except TypeError:  # a factory that needs the validated data: nothing fixed to show
        return "computed"
    return value_text(value)


def value_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json", exclude_none=True))
    if isinstance(value, enum.Enum):
        return json.dumps(value.value)
    if isinstance(value, PurePath):
        return json.dumps(str(value))
    return json.dumps(value, default=str)


def bounds(field: FieldInfo) -> list[str]:
    """The field's constraints in words: `1 to 63`, `over 0`, `at least one item`, `matches ...`."""
    found: dict[str, Any] = {}
    for m in field.metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            if getattr(m, attr, None) is not None:
                found[attr] = getattr(m, attr)
    out: list[str] = []
    low = (found["ge"], "at least") if "ge" in found else (found["gt"], "over") if "gt" in found else (None, "")
    high = (found["le"], "at most") if "le" in found else (found["lt"], "under") if "lt" in found else (None, "")
    if "ge" in found and "le" in found:
        out.append(f"{found['ge']} to {found['le']}")
    else:
        out += [f"{word} {value}" for value, word in (low, high) if value is not None]
    if "min_length" in found:
        n, text = found["min_length"], field.annotation is str
        out.append(("not empty" if n == 1 else f"at least {n} characters") if text
                   else ("at least one item" if n == 1 else f"at least {n} items"))
    if "max_length" in found:
        out.append(f"at most {found['max_length']} characters")
    if "pattern" in found:
        out.append(f"matches `{found['pattern']}`")
    return out


def sections(model: type[BaseModel], key: str = "", id_prefix: str = "") -> list[Section]:
    """The model and every model nested in it, depth first, in field order."""
    found = [Section(key, model, id_prefix)]
    for name, field in model.model_fields.items():
        nested = nested_model(field.annotation)
        if nested:
            sub, suffix = nested
            found += sections(sub, f"{key}.{name}{suffix}" if key else f"{name}{suffix}", id_prefix)
    return found


def field_table(section: Section, *, prefix_keys: bool = True, root: str = "") -> str:
    """The table of one section's fields. Nested models link to their own section.

    Keys are shown in full (`aws.organization.role_name`), less `root` (`policies[]`), which every
    key of a page would otherwise repeat."""
    fields = section.model.model_fields
    if not fields:
        return "No parameters."
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for name, field in fields.items():
        key = f"{section.key}.{name}" if (section.key and prefix_keys) else name
        if root and key.startswith(root + "."):
            key = key[len(root) + 1:]
        nested = nested_model(field.annotation)
        if nested:
            sub, suffix = nested
            sub_key = f"{section.key}.{name}{suffix}" if section.key else f"{name}{suffix}"
            kind = {"": "section", "[]": "list of", ".<key>": "map of"}[suffix]
            typ = f"{kind} [`{sub_key}`](#{anchor(section.id_prefix + sub_key)})"
            default = "see section" if suffix == "" else f"`{default_text(field)}`"
        else:
            typ = f"`{type_name(field.annotation)}`"
            default = f"`{default_text(field)}`"
        desc = escape(" ".join((field.description or "").split()))
        extra = "; ".join(escape(b) for b in bounds(field))
        text = f"{desc} ({extra})" if desc and extra else desc or extra
        rows.append(f"| `{key}` | {escape_cell(typ)} | {escape_cell(default)} | {text or '-'} |")
    return "\n".join(rows)


def escape_cell(text: str) -> str:
    """Escape pipes outside code spans only (links and code already are what they should be)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("|", "\\|")
    return "`".join(parts)


def undocumented(model: type[BaseModel], key: str = "") -> list[str]:
    """Keys of fields without a description: the reference shows them with a dash."""
    out = []
    for s in sections(model, key):
        for name, field in s.model.model_fields.items():
            if not field.description and not nested_model(field.annotation):
                out.append(f"{s.key}.{name}" if s.key else name)
    return out
