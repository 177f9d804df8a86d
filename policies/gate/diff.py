"""Pair the settings of a file's base and head versions, so only real changes reach the report.

Why matching is by key and then by value: a pull request that renames a key, moves a block or
reorders a file but keeps the model (or instance type and count) changes nothing on the bill
and must not be flagged. So settings are paired in three passes, per kind:

1. same key in both versions -> a change if the value or the count differs;
2. of the rest, equal value and count -> a rename, not a change;
3. of the rest, in file order -> a change with a renamed key ("default_model -> model: a -> b").

What is left is added (new cost from nothing) or removed (cost that goes away). Finally
`cancel_moves` drops an added and a removed setting of equal value and count in *different*
files: a setting moved to another file (git does not always see the move as a rename when the
file's other lines changed too) costs the same as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from costwarden.policies.gate.setting import Setting

Status = Literal["modified", "added", "removed"]


@dataclass(frozen=True)
class Change:
    """One cost-relevant difference in one file; `old_file` is the base path of a renamed file."""

    file: str
    old: Setting | None
    new: Setting | None
    old_file: str | None = None

    @property
    def status(self) -> Status:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "modified"

    @property
    def setting(self) -> Setting:
        """The head setting, else the base one (for kind, key and line)."""
        return self.new or self.old  # type: ignore[return-value]


def _same(a: Setting, b: Setting) -> bool:
    return a.value.strip().lower() == b.value.strip().lower() and a.count == b.count


def diff_settings(file: str, old: list[Setting], new: list[Setting], old_file: str | None = None) -> list[Change]:
    """Changes between two versions of one file (see the module docstring for the passes)."""
    changes: list[Change] = []
    for kind in ("model", "instance", "gpu", "limit", "prompt"):
        olds = [s for s in old if s.kind == kind]
        news = [s for s in new if s.kind == kind]
        new_by_key = {s.key: s for s in news}
        rest_old: list[Setting] = []
        matched: set[str] = set()
        for o in olds:
            n = new_by_key.get(o.key)
            if n is None or o.key in matched:
                rest_old.append(o)
                continue
            matched.add(o.key)
            if not _same(o, n):
                changes.append(Change(file, o, n, old_file))
        rest_new = [s for s in news if s.key not in matched]
        for o in list(rest_old):  # pass 2: renamed, same value
            twin = next((n for n in rest_new if _same(o, n)), None)
            if twin is not None:
                rest_old.remove(o)
                rest_new.remove(twin)
        for o, n in zip(rest_old, rest_new):  # pass 3: renamed and changed
            changes.append(Change(file, o, n, old_file))
        k = min(len(rest_old), len(rest_new))
        changes.extend(Change(file, o, None, old_file) for o in rest_old[k:])
        changes.extend(Change(file, None, n, old_file) for n in rest_new[k:])
    return changes


def cancel_moves(changes: list[Change]) -> list[Change]:
    """Drop added/removed pairs with equal kind, value and count (a setting moved between files)."""
    removed = [c for c in changes if c.status == "removed"]
    dropped: set[int] = set()
    for c in changes:
        if c.status != "added":
            continue
        twin = next((r for r in removed if id(r) not in dropped and r.old and c.new and r.old.kind == c.new.kind
                     and _same(r.old, c.new)), None)
        if twin is not None:
            dropped |= {id(twin), id(c)}
    return [c for c in changes if id(c) not in dropped]
