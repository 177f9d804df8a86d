"""The sweep graph (agent/engine/graph.py) walked in this process, without LangGraph's runtime.

For the one-shot dry-run `audit`: LangGraph's import (with langchain_core and langsmith) is
about half of the command's start-up, and a sweep uses nothing of it but the walk itself (no
checkpointer, no interrupt). The walk is the declaration's, step by step, with LangGraph's rules
for a state update: a key whose annotation carries a reducer (Annotated[list, operator.add]) is
combined with the value it had, any other key is replaced, and a key the state does not declare
is an error. tests/test_sweep_inline.py runs sweeps both ways and compares path and final state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, get_args, get_origin, get_type_hints

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.graph import EDGES, FIRST, LAST, NODES, ROUTES
from costwarden.agent.engine.nodes.state import SweepState


@dataclass(frozen=True)
class InlineRuntime:
    """What a node reads of LangGraph's Runtime: the run's context (read-only by convention)."""

    context: SweepContext


@cache
def reducers() -> dict[str, Callable[[Any, Any], Any] | None]:
    """State key -> its reducer, or None for a key a new value replaces."""
    out: dict[str, Callable[[Any, Any], Any] | None] = {}
    for key, hint in get_type_hints(SweepState, include_extras=True).items():
        fns = [m for m in get_args(hint)[1:] if callable(m)] if get_origin(hint) is Annotated else []
        out[key] = fns[-1] if fns else None
    return out


def apply(state: dict[str, Any], update: dict[str, Any] | None, node: str) -> None:
    """Merge a node's partial update into `state`, as LangGraph does."""
    known = reducers()
    for key, value in (update or {}).items():
        if key not in known:
            raise KeyError(f"sweep node {node!r} returned {key!r}, which SweepState does not declare")
        fn = known[key]
        state[key] = fn(state[key], value) if fn is not None and key in state else value


def walk(inputs: dict[str, Any], ctx: SweepContext) -> tuple[dict[str, Any], list[str]]:
    """Run the sweep graph once; its final state and the nodes it ran, in order."""
    state: dict[str, Any] = {}
    apply(state, inputs, "<input>")
    runtime = InlineRuntime(ctx)
    path: list[str] = []
    node: str | None = FIRST
    while node is not None:
        apply(state, NODES[node](dict(state), runtime), node)  # a node's own edits to its input are not kept
        path.append(node)
        if node == LAST:
            node = None
        elif node in EDGES:
            node = EDGES[node]
        else:
            router, targets = ROUTES[node]
            node = router(state)
            if node not in targets:
                raise ValueError(f"router of {path[-1]!r} chose {node!r}, not one of {targets}")
    return state, path
