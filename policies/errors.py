"""Errors a user can fix by editing a file: each names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

from costwarden.state.errors import CostwardenError


class PolicyError(CostwardenError, ValueError):
    def __init__(self, path: str | Path, message: str, *, line: int | None = None, field: str | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        where = self.path + (f":{line}" if line else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")
