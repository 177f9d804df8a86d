"""The checkpointed state of one sweep: small, JSON-shaped, enough to resume after a restart."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class SweepState(TypedDict, total=False):
    run_id: str
    dry_run: bool
    findings: list[dict[str, Any]]
    priority: list[str]  # finding ids in digest order (set by explain); the findings keep theirs
    actions: list[dict[str, Any]]
    inventoried: int
    errors: Annotated[list[str], operator.add]
    warnings: Annotated[list[str], operator.add]
    status: str
