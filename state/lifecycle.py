"""The action lifecycle: every status an action can have, and the one table of moves between them.

Every write of an action's status in the store goes through `TRANSITIONS` (state/store/actions.py
builds its `UPDATE ... WHERE status IN (sources)` from it), so a status can only change along an
edge listed here; anything else raises `IllegalTransition`. The enums are `str`-valued: the
database column and the JSON contract keep the same strings as before.

Expiry, snooze, rejection and approval are distinct transitions. Expiry is decided by the clock,
never by a vote, and no vote is ever cast by Costwarden itself (`SYSTEM_ACTOR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from costwarden.state.errors import CostwardenError

SYSTEM_ACTOR = "costwarden"  # the agent's own name in the audit trail; never a voter


class ActionStatus(StrEnum):
    PLANNED = "planned"  # auto: about to be executed in this sweep
    DRY_RUN = "dry_run"  # would have been executed or asked for; dry-run is on
    REPORTED = "reported"
    SKIPPED = "skipped"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"  # a human approved; not claimed yet
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody decided within the approval window
    WITHDRAWN = "withdrawn"  # approved, but not executed (expired meanwhile, policy gone, now protected)
    PENDING = "pending"  # claimed: written before the cloud call
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # cut off before it applied; the next sweep re-plans it under a new id


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class Vote(StrEnum):
    """What a human may decide on an approval request."""

    APPROVE = "approve"
    REJECT = "reject"
    SNOOZE = "snooze"


class Transition(StrEnum):
    PLAN = "plan"
    REQUEST_APPROVAL = "request_approval"
    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"
    SNOOZE = "snooze"
    CLAIM = "claim"
    COMPLETE = "complete"
    FAIL = "fail"
    WITHDRAW = "withdraw"
    REPLAN = "replan"
    RELEASE = "release"


@dataclass(frozen=True)
class Edge:
    """One named transition: the statuses it may start from (None: the action is new) and end in."""

    sources: frozenset[ActionStatus | None]
    targets: frozenset[ActionStatus]
    why: str


S = ActionStatus
_NEW: frozenset[ActionStatus | None] = frozenset({None})

TRANSITIONS: dict[Transition, Edge] = {
    Transition.PLAN: Edge(_NEW, frozenset({S.PLANNED, S.REPORTED, S.SKIPPED, S.DRY_RUN}),
                          "the guard records its decision on a new action"),
    Transition.REQUEST_APPROVAL: Edge(_NEW, frozenset({S.AWAITING_APPROVAL}),
                                      "the guard sends a new action to a human"),
    Transition.APPROVE: Edge(frozenset({S.AWAITING_APPROVAL}), frozenset({S.APPROVED}),
                             "the last required approver votes approve"),
    Transition.REJECT: Edge(frozenset({S.AWAITING_APPROVAL}), frozenset({S.REJECTED}), "an approver rejects"),
    Transition.EXPIRE: Edge(frozenset({S.AWAITING_APPROVAL}), frozenset({S.EXPIRED}),
                            "the approval window closes with no decision (the clock, not a vote)"),
    Transition.SNOOZE: Edge(frozenset({S.AWAITING_APPROVAL}), frozenset({S.AWAITING_APPROVAL}),
                            "an approver moves the expiry later"),
    Transition.CLAIM: Edge(frozenset({S.PLANNED, S.APPROVED}), frozenset({S.PENDING}),
                           "written before the cloud call; only one caller wins"),
    Transition.COMPLETE: Edge(frozenset({S.PENDING}), frozenset({S.DONE}), "the change is verified"),
    Transition.FAIL: Edge(frozenset({S.PENDING}), frozenset({S.FAILED}), "the cloud call or its check failed"),
    Transition.WITHDRAW: Edge(frozenset({S.APPROVED}), frozenset({S.WITHDRAWN}),
                              "an approved action that may no longer run (expired, policy gone, protected)"),
    Transition.REPLAN: Edge(frozenset({S.PLANNED, S.PENDING}), frozenset({S.INTERRUPTED}),
                            "cut off before it applied; the next sweep plans it again"),
    Transition.RELEASE: Edge(frozenset({S.PENDING}), frozenset({S.APPROVED}),
                             "a person approved it, and it was cut off before it applied: the claim is given "
                             "back, and it runs again (or is withdrawn) under the policies as they are now"),
}

TERMINAL: frozenset[ActionStatus] = frozenset(
    s for s in ActionStatus if not any(s in e.sources for e in TRANSITIONS.values()))


def allowed() -> dict[ActionStatus | None, frozenset[ActionStatus]]:
    """From-status -> every status reachable in one transition (the table, read the other way)."""
    out: dict[ActionStatus | None, set[ActionStatus]] = {}
    for edge in TRANSITIONS.values():
        for src in edge.sources:
            out.setdefault(src, set()).update(edge.targets)
    return {k: frozenset(v) for k, v in out.items()}


class IllegalTransition(CostwardenError, ValueError):
    """A status change the lifecycle table does not allow."""

    def __init__(self, action_id: str, transition: Transition | None, current: str | None,
                 target: str | None = None) -> None:
        to = f" to {target}" if target else ""
        if transition is None:
            super().__init__(f"action {action_id}: no transition from {current or 'new'}{to} in the lifecycle table")
            return
        srcs = ", ".join(sorted(str(s) if s else "new" for s in TRANSITIONS[transition].sources))
        super().__init__(f"action {action_id}: cannot {transition}{to} from {current or 'new'} "
                         f"(allowed from: {srcs})")


def sources(transition: Transition) -> tuple[str, ...]:
    """The statuses `transition` may start from, for an `UPDATE ... WHERE status IN (...)`."""
    return tuple(sorted(str(s) for s in TRANSITIONS[transition].sources if s is not None))


def target(transition: Transition, wanted: str | None = None) -> ActionStatus:
    """The status `transition` ends in (`wanted` chooses among several; it must be one of them)."""
    targets = TRANSITIONS[transition].targets
    if wanted is None:
        if len(targets) != 1:
            raise ValueError(f"{transition} ends in one of {sorted(targets)}; say which")
        return next(iter(targets))
    if wanted not in targets:
        raise ValueError(f"{transition} cannot end in {wanted!r} (only {', '.join(sorted(targets))})")
    return ActionStatus(wanted)


def check(action_id: str, transition: Transition, current: str | None, wanted: str | None = None) -> ActionStatus:
    """The status after `transition` from `current`, or IllegalTransition."""
    edge = TRANSITIONS[transition]
    cur = ActionStatus(current) if current is not None else None
    if cur not in edge.sources:
        raise IllegalTransition(action_id, transition, current, wanted)
    return target(transition, wanted)


def transition_between(current: str | None, wanted: str) -> Transition | None:
    """The named transition from `current` to `wanted`, if the table has exactly one."""
    cur = ActionStatus(current) if current is not None else None
    found = [t for t, e in TRANSITIONS.items() if cur in e.sources and wanted in e.targets]
    return found[0] if len(found) == 1 else None


def markdown_table() -> str:
    """The table as Markdown, for the docs (docs/_hooks) and the test that keeps them in step."""
    lines = ["| Transition | From | To | When |", "|---|---|---|---|"]
    for name, edge in TRANSITIONS.items():
        frm = ", ".join(sorted(f"`{s}`" if s else "(new)" for s in edge.sources))
        to = ", ".join(sorted(f"`{s}`" for s in edge.targets))
        lines.append(f"| `{name}` | {frm} | {to} | {edge.why} |")
    return "\n".join(lines)
