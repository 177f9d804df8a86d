"""The sweep, as its diagram:

    collect
       |
    detect ----------------------+  nothing found
       |                         |
    explain -> plan -> guard     |
                         |       |
                         +-------|----+  nothing awaits a human
                         |       |    |
                      approve    |    |
                         |       |    |
                         +-------|----+----+  nothing automatic, or a dry run
                         |       |         |
                        act      |         |
                         |       |         |
                       record <--+---------+

Each node is a small function of (state, runtime) -> partial state, in agent/engine/nodes/, and
writes what it decided to the store as it goes. What one node hands the next travels in the
state (nodes/state.py), never through the context.

The graph is compiled WITHOUT a checkpointer, on purpose. `collect` hands `detect` one lazy,
once-only stream per policy (nodes/stream.py): the collector's generator itself, so a sweep of
thousands of instances never holds all their series at once. A stream is a live read of cloud
APIs and cannot be checkpointed without materialising it, and nothing would read a sweep
checkpoint anyway: a sweep never pauses. What waits for a human is each action's own approval
thread (agent/engine/approvals.py), the only thing checkpointed. A sweep cut off by a crash is
marked interrupted at the next start and the next tick sweeps afresh; its records up to the
crash are in the store.

The diagram is declared once, as data (NODES, EDGES, ROUTES), and compiled into LangGraph's
StateGraph by `build_graph`. LangGraph, with langchain_core and its langsmith client, is about
half of what a sweep imports (~0.7 s of CPU), and a one-shot dry-run `audit` uses none of what
it adds to the walk (no checkpointer, no interrupt: see above), so `audit` walks the same
declaration in its own process (agent/engine/inline.py) and never imports it; the daemon's
sweeps and every approval thread run on LangGraph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.act import act
from costwarden.agent.engine.nodes.approve import approve
from costwarden.agent.engine.nodes.collect import collect
from costwarden.agent.engine.nodes.detect import detect
from costwarden.agent.engine.nodes.explain import explain
from costwarden.agent.engine.nodes.guard import guard
from costwarden.agent.engine.nodes.plan import plan
from costwarden.agent.engine.nodes.record import record
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.state.domain import AUTO
from costwarden.state.lifecycle import ActionStatus


def after_detect(state: SweepState) -> str:
    return "explain" if state.get("findings") else "record"


def after_approve(state: SweepState) -> str:
    if state.get("dry_run"):
        return "record"
    auto = any(a["decision"] == AUTO and a["status"] == "planned" for a in state.get("actions", []))
    return "act" if auto else "record"


def after_guard(state: SweepState) -> str:
    if any(a["status"] == ActionStatus.AWAITING_APPROVAL for a in state.get("actions", [])):
        return "approve"
    return after_approve(state)


FIRST = "collect"
LAST = "record"  # the graph ends after it
NODES: dict[str, Callable[..., dict[str, Any]]] = {
    "collect": collect, "detect": detect, "explain": explain, "plan": plan, "guard": guard, "approve": approve,
    "act": act, "record": record}
EDGES = {"collect": "detect", "explain": "plan", "plan": "guard", "act": "record"}  # fixed successors
ROUTES: dict[str, tuple[Callable[[SweepState], str], tuple[str, ...]]] = {  # node -> (router, its possible answers)
    "detect": (after_detect, ("explain", "record")),
    "guard": (after_guard, ("approve", "act", "record")),
    "approve": (after_approve, ("act", "record")),
}


def build_graph() -> Any:
    """The declaration above as a compiled LangGraph StateGraph."""
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(SweepState, context_schema=SweepContext)
    for name, fn in NODES.items():
        g.add_node(name, fn)
    g.add_edge(START, FIRST)
    for source, target in EDGES.items():
        g.add_edge(source, target)
    for source, (router, targets) in ROUTES.items():
        g.add_conditional_edges(source, router, list(targets))
    g.add_edge(LAST, END)
    return g.compile()  # no checkpointer: see the module docstring
