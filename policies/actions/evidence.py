"""Action parameters that take their value from the finding: `to: {from_evidence: alternative_type}`.

Why: a detector knows the right target for each resource (the cheaper instance type it priced,
the off window it observed), while a policy names the action once for all of them. A parameter
is either a fixed value or a reference to a key of the finding's evidence (dots reach into
nested mappings, digits into lists), with an optional default when the key is absent.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from costwarden.state.domain import Finding
from costwarden.state.errors import CostwardenError

_MISSING = object()


class PlanError(CostwardenError, ValueError):
    """An action cannot be planned from a finding (its evidence lacks what the policy refers to)."""


class FromEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_evidence: str = Field(min_length=1, description="Key of the finding's evidence; dots for nested keys.")
    default: Any = None


def resolve(value: Any, finding: Finding, *, action: str, field: str) -> Any:
    """The fixed value, or the evidence value a FromEvidence names; a one-line PlanError if absent."""
    if not isinstance(value, FromEvidence):
        return value
    found: Any = finding.evidence
    for part in value.from_evidence.split("."):
        if isinstance(found, list) and part.isdigit():  # `schedule.rules.0.stop_at`
            found = found[int(part)] if int(part) < len(found) else _MISSING
        else:
            found = found.get(part, _MISSING) if isinstance(found, dict) else _MISSING
        if found is _MISSING:
            break
    if found is _MISSING or found is None:
        if value.default is not None:
            return value.default
        raise PlanError(f"policy {finding.policy!r}, action {action!r}, field '{field}': finding {finding.id} "
                        f"({finding.detector} on {finding.resource_id}) has no evidence key "
                        f"{value.from_evidence!r}")
    return found
