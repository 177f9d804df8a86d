"""One policy's observations as they travel from `collect` to `detect` in the graph's state.

A collector is a generator: it pages the inventory and fetches metrics batch by batch as it is
read, so the stream is the lazy read itself, not the data. It can be read once; a second read
(a node run twice, a graph resumed from somewhere) raises instead of quietly finding nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from costwarden.state.domain import Observation
from costwarden.tools.collectors import CollectPlan, CollectReport


class StreamConsumed(RuntimeError):
    """A stream read a second time: its observations are gone, the sweep must collect again."""


@dataclass(eq=False)
class ObservationStream:
    policy: str
    source: Iterator[Observation] | None = field(repr=False)
    report: CollectReport = field(default_factory=CollectReport)  # filled in by the collector as it is read
    # One read shared by several policies of a resource type (tools/sharing.py): policy name -> its own
    # plan, which `detect` uses to give each policy its view of every observation. Empty: the read is
    # `policy`'s alone. A shared stream is the value of every member's name in the graph's state.
    members: dict[str, CollectPlan] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Observation]:
        if self.source is None:
            raise StreamConsumed(f"the observations of policy {self.policy!r} were already read; "
                                 "a sweep reads them once (collect again in a new sweep)")
        source, self.source = self.source, None  # the exhausted generator is dropped with the reader
        return source

    def __reduce__(self) -> object:
        raise TypeError("an ObservationStream is a live read of cloud APIs and cannot be checkpointed; "
                        "the sweep graph runs without a checkpointer (agent/engine/graph.py)")
