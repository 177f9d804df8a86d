"""What every action is: a registered class that turns a finding into a tool call and a saving."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from costwarden.state.domain import Finding


class ActionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Any]
    projected_monthly_savings_usd: Decimal
    # Non-empty: the guard asks a person even in auto mode, with this as its reason (e.g. a resize
    # with restart: downtime, which `destructive` and its two approvers do not fit).
    approval_reason: str = ""


# (provider, region, type) -> (USD per hour per unit, or None when unpriced; where the figure came from)
PriceOf = Callable[[str, str, str], tuple[Decimal | None, str]]


@dataclass(frozen=True)
class PlanContext:
    """What a plan may depend on besides the finding, taken from the sweep that found it.

    Why: planning must agree with detection. A mark's due date counts from the sweep's `now` (the
    one the marked-for-op filter compares against), not the wall clock, and a target type is priced
    from the sweep's price book, `pricing.overrides` included, like the current type was.
    """

    now: datetime
    price_of: PriceOf


class Action:
    name: ClassVar[str]
    resource_types: ClassVar[tuple[str, ...]] = ()
    # The cloud permissions it uses, AWS `service:Action` and GCP `service.resource.verb` (policies/permissions.py);
    # no default: a class that declares none fails the registry test and `policies permissions`.
    permissions: ClassVar[tuple[str, ...]]
    destructive: ClassVar[bool] = False  # delete/terminate: may need two approvers later
    # Non-empty: the action proposes something only for findings of these detectors; a policy's
    # other filters (a report-only anomaly beside them) get no proposal from it, and no error.
    for_detectors: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type[ActionParams]] = ActionParams

    def __init__(self, params: ActionParams) -> None:
        self.params = params

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:  # pragma: no cover - abstract
        raise NotImplementedError
