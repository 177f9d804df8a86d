"""What every action is: a registered class that turns a finding into a tool call and a saving."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from state.domain import Finding


class ActionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Any]
    projected_monthly_savings_usd: Decimal


class Action:
    name: ClassVar[str]
    resource_types: ClassVar[tuple[str, ...]] = ()
    destructive: ClassVar[bool] = False  # delete/terminate: may need two approvers later
    Params: ClassVar[type[ActionParams]] = ActionParams

    def __init__(self, params: ActionParams) -> None:
        self.params = params

    def plan(self, finding: Finding) -> ToolCall:  # pragma: no cover - abstract
        raise NotImplementedError
