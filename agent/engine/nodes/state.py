"""The state of one sweep, passed from node to node (the sweep graph is not checkpointed)."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from costwarden.agent.engine.nodes.stream import ObservationStream


class SweepState(TypedDict, total=False):
    run_id: str
    dry_run: bool
    streams: dict[str, ObservationStream]  # policy name -> its observations (set by collect, read once by detect);
    # policies of one resource type may map to the same, shared stream (its `members`)
    findings: list[dict[str, Any]]
    insufficient: list[dict[str, Any]]  # resources a detector could not judge for want of data (set by detect)
    priority: list[str]  # finding ids in digest order (set by explain); the findings keep theirs
    actions: list[dict[str, Any]]
    inventoried: int
    flagged_in_run: dict[str, int]  # a fanned-out part: distinct resources each max-resources policy flagged
    # in the whole run so far (set by detect, read by guard)
    errors: Annotated[list[str], operator.add]
    warnings: Annotated[list[str], operator.add]
    status: str
