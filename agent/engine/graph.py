"""The sweep, as its diagram:

    collect -> detect -> explain -> plan -> guard -> approve -> act -> record

Each node is a small function of (state, runtime) -> partial state, in agent/engine/nodes/. Every
node writes what it decided to the store as it goes; the checkpointer (SQLite) keeps the
thread so a later process can resume it.
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

PIPELINE = [("collect", collect), ("detect", detect), ("explain", explain), ("plan", plan),
            ("guard", guard), ("approve", approve), ("act", act), ("record", record)]


def build_graph(checkpointer: Any | None = None) -> Any:
    g = StateGraph(SweepState, context_schema=SweepContext)
    for name, fn in PIPELINE:
        g.add_node(name, fn)
    g.add_edge(START, PIPELINE[0][0])
    for (a, _), (b, _) in zip(PIPELINE, PIPELINE[1:]):
        g.add_edge(a, b)
    g.add_edge(PIPELINE[-1][0], END)
    return g.compile(checkpointer=checkpointer)
