"""YAML with line numbers, so a validation error can point at the line a user must edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from costwarden.policies.errors import PolicyError

PathKey = tuple[str | int, ...]


class LocatedYaml:
    """Parsed YAML data plus the line of every mapping key and sequence item in it."""

    def __init__(self, path: Path, data: Any, lines: dict[PathKey, int]) -> None:
        self.path = path
        self.data = data
        self._lines = lines

    def line_of(self, loc: PathKey) -> int | None:
        """The line of the deepest known prefix of `loc` (a pydantic error location)."""
        loc = tuple(loc)
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return self._lines.get((), None)

    def error_from_validation(self, exc: ValidationError, prefix: PathKey = ()) -> PolicyError:
        err = exc.errors()[0]
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        field = ".".join(str(p) for p in loc) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see `costwarden policies schema`)"
        return PolicyError(self.path, msg, line=self.line_of(loc), field=field)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def load_located_yaml(path: str | Path) -> LocatedYaml:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(path, f"cannot read file: {exc}") from None
    return parse_located_yaml(text, path)


def parse_located_yaml(text: str, path: str | Path) -> LocatedYaml:
    """YAML text (read by the caller) with its lines; `path` only names it in errors."""
    path = Path(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise PolicyError(path, f"invalid YAML: {problem}", line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(path, f"invalid YAML: {exc}") from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return LocatedYaml(path, data, lines)
