"""and / or / not: blocks of plain filters, as in Cloud Custodian (`- or: [...]`).

`not` is "not all of": c7n's Not negates the AND of its filters. Detectors may stand in a
top-level `or` block (any of them flags; each gives its own finding, see policies/evaluate.py),
never inside `and`/`not` or deeper: a negated or nested detector has no finding to give.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from costwarden.policies.detectors.base import Detector, DetectorParams, PlainFilter
from costwarden.policies.registry import detectors
from costwarden.policies.resources import RESOURCE_TYPES
from costwarden.state.domain import Resource


class BlockParams(DetectorParams):
    filters: list[Any] = Field(min_length=1, description="The filters of the block (any filter, written as in `filters`).")


class Block(PlainFilter):
    """A block's children are built by the loader (policies/loader.py) from `filters`."""

    resource_types = tuple(RESOURCE_TYPES)
    Params = BlockParams
    permissions = ()  # a block's calls are its children's, which declare their own

    def __init__(self, params: DetectorParams, children: list[Detector] | None = None) -> None:
        super().__init__(params)
        self.children: list[Detector] = children or []

    @property
    def plain_children(self) -> list[PlainFilter]:
        return [c for c in self.children if isinstance(c, PlainFilter)]


@detectors.register("and")
class And(Block):
    def matches(self, resource: Resource, now: datetime) -> bool:
        return all(c.matches(resource, now) for c in self.plain_children)


@detectors.register("or")
class Or(Block):
    def matches(self, resource: Resource, now: datetime) -> bool:
        return any(c.matches(resource, now) for c in self.plain_children)


@detectors.register("not")
class Not(Block):
    def matches(self, resource: Resource, now: datetime) -> bool:
        return not all(c.matches(resource, now) for c in self.plain_children)
