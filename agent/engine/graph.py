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
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

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


def build_graph() -> Any:
    g = StateGraph(SweepState, context_schema=SweepContext)
    for name, fn in (("collect", collect), ("detect", detect), ("explain", explain), ("plan", plan),
                     ("guard", guard), ("approve", approve), ("act", act), ("record", record)):
        g.add_node(name, fn)
    g.add_edge(START, "collect")
    g.add_edge("collect", "detect")
    g.add_conditional_edges("detect", after_detect, ["explain", "record"])
    g.add_edge("explain", "plan")
    g.add_edge("plan", "guard")
    g.add_conditional_edges("guard", after_guard, ["approve", "act", "record"])
    g.add_conditional_edges("approve", after_approve, ["act", "record"])
    g.add_edge("act", "record")
    g.add_edge("record", END)
    return g.compile()  # no checkpointer: see the module docstring
