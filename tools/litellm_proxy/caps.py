"""The guarded tools behind cap-spend: set a LiteLLM team's or key's limits, and put the old ones back.

`llm.feature.set_limits` (and `llm.tier.set_limits`) reads the row first (GET /team/info or /key/info): its current values of the
fields the action sets are the before-state the store records with `pending`, which is what undo puts
back. A row already holding the wanted values is done without a POST (the action is idempotent); else
exactly one POST /team/update or /key/update, then a read-back that must show the new values.
`*.restore_limits` is the undo: one POST with the recorded previous values (null included,
which clears a limit that was not set before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from costwarden.tools.errors import ToolError
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool

if TYPE_CHECKING:  # httpx loads with the client, when a cap runs, not when the tool registry does
    from costwarden.tools.litellm_proxy.admin import LiteLLMAdmin

Scope = Literal["team", "key"]
LIMIT_FIELDS = ("max_budget", "budget_duration", "tpm_limit", "rpm_limit")


def limits_of(row: dict[str, Any]) -> dict[str, Any]:
    """The four limits cap-spend sets, as a team or key row holds them (None: no limit)."""
    return {k: row.get(k) for k in LIMIT_FIELDS}

PROVIDER = "litellm"
RESOURCE_TYPES = ("llm.feature", "llm.tier")  # what cap-spend acts on: a feature's or a tier's spend


def wanted_fields(limits: dict[str, Any]) -> dict[str, Any]:
    """The limits an action sets: its non-null values among the four cap-spend knows."""
    unknown = sorted(set(limits) - set(LIMIT_FIELDS))
    if unknown:
        raise ToolError(f"cap-spend: unknown limit field(s) {', '.join(unknown)}; known: {', '.join(LIMIT_FIELDS)}")
    return {k: v for k, v in limits.items() if v is not None}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-9
    return a == b


def observe_limits(admin: LiteLLMAdmin, *, scope: Scope, target: str, limits: dict[str, Any],
                   **_context: Any) -> dict[str, Any]:
    """The row's current limits; state `capped` when it holds every wanted value, else `uncapped`."""
    current = limits_of(admin.info(scope, target))
    wanted = wanted_fields(limits)
    capped = all(_same(current.get(k), v) for k, v in wanted.items())
    return {"scope": scope, "target": target, "state": "capped" if capped else "uncapped", "limits": current,
            "previous": {k: current.get(k) for k in wanted}}


def is_capped(state: dict[str, Any]) -> bool:
    return state.get("state") == "capped"


def set_limits(admin: LiteLLMAdmin, *, scope: Scope, target: str, limits: dict[str, Any],
               **_context: Any) -> ToolOutcome:
    """Set the wanted limits with one update, unless they already hold; verify by reading them back."""
    wanted = wanted_fields(limits)
    if not wanted:
        raise ToolError(f"cap-spend on {scope} {target}: no limit to set")
    before = observe_limits(admin, scope=scope, target=target, limits=limits)
    if is_capped(before):
        return ToolOutcome(True, before, "limits already in place; nothing to do")
    admin.update(scope, target, wanted)
    after = observe_limits(admin, scope=scope, target=target, limits=limits)
    after["previous"] = before["previous"]  # what undo puts back, next to what is there now
    if not is_capped(after):
        return ToolOutcome(False, after, f"{scope} {target}: the proxy accepted the update but reads back "
                                         f"{after['limits']}")
    return ToolOutcome(True, after)


def observe_restored(admin: LiteLLMAdmin, *, scope: Scope, target: str, previous: dict[str, Any],
                     **_context: Any) -> dict[str, Any]:
    current = limits_of(admin.info(scope, target))
    back = all(_same(current.get(k), v) for k, v in previous.items())
    return {"scope": scope, "target": target, "state": "restored" if back else "capped", "limits": current}


def restore_limits(admin: LiteLLMAdmin, *, scope: Scope, target: str, previous: dict[str, Any],
                   **_context: Any) -> ToolOutcome:
    """Undo a cap: POST the recorded previous values (a null clears the limit the cap added)."""
    unknown = sorted(set(previous) - set(LIMIT_FIELDS))
    if unknown or not previous:
        raise ToolError(f"undo on {scope} {target}: 'previous' must name some of {', '.join(LIMIT_FIELDS)}")
    now = observe_restored(admin, scope=scope, target=target, previous=previous)
    if now["state"] == "restored":
        return ToolOutcome(True, now, "previous limits already in place; nothing to do")
    admin.update(scope, target, dict(previous))
    after = observe_restored(admin, scope=scope, target=target, previous=previous)
    return ToolOutcome(after["state"] == "restored", after,
                       "" if after["state"] == "restored" else f"reads back {after['limits']}")


def undo_args(action_args: dict[str, Any], before_state: dict[str, Any]) -> dict[str, Any]:
    """The restore_limits arguments that undo an executed set_limits action, from its recorded before-state."""
    if "previous" not in before_state:
        raise ToolError(f"no recorded previous limits for {action_args.get('scope')} {action_args.get('target')}: "
                        "cannot undo")
    return {"scope": action_args["scope"], "target": action_args["target"], "previous": dict(before_state["previous"])}


def describe_limits(args: dict[str, Any]) -> str:
    """'LiteLLM team starter: max_budget $157.81 per 30d': the change an approver is asked about."""
    limits = wanted_fields(dict(args.get("limits") or {}))
    parts = []
    if "max_budget" in limits:
        parts.append(f"max_budget ${float(limits['max_budget']):,.2f}"
                     + (f" per {limits['budget_duration']}" if limits.get("budget_duration") else ""))
    parts += [f"{k} {limits[k]:,}" for k in ("tpm_limit", "rpm_limit") if k in limits]
    return f"LiteLLM {args.get('scope')} {args.get('target')}: {', '.join(parts) or 'no change'} (previous values kept for undo)"


for _rt in RESOURCE_TYPES:  # one tool name per resource type (tool names start with it), the same calls
    register_tool(ToolSpec(f"{_rt}.set_limits", PROVIDER, set_limits, observe_limits, is_capped,
                           describe=describe_limits,
                           undo=lambda args, before, rt=_rt: (f"{rt}.restore_limits", undo_args(args, before))))
    register_tool(ToolSpec(f"{_rt}.restore_limits", PROVIDER, restore_limits, observe_restored,
                           lambda st: st.get("state") == "restored"))
