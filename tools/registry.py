"""The guarded tools: each cloud action is one function registered here, next to its observer.

`observe` reads the resource's real state without changing it: it gives the before-state that
is written with `pending`, and lets start-up reconciliation tell whether a crashed action
actually happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from costwarden.state.registry import Registry


@dataclass(frozen=True)
class ToolOutcome:
    ok: bool
    after: dict[str, Any]
    detail: str = ""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    provider: str
    run: Callable[..., ToolOutcome]
    observe: Callable[..., dict[str, Any]]
    is_done: Callable[[dict[str, Any]], bool]
    mutating: bool = True
    # A run cut off by a crash is finished at start-up by running it again (its run reads the real
    # state and does only what is left), instead of being left to the next sweep: a resize that
    # stopped an instance must start it again, and no finding would bring it back.
    resume: bool = False
    # One line saying what the call changes, for the approval message ("team starter: max_budget ...").
    describe: Callable[[dict[str, Any]], str] | None = None
    # (args, recorded before-state) -> (the undo tool's name, its args); None: no undo
    undo: Callable[[dict[str, Any], dict[str, Any]], tuple[str, dict[str, Any]]] | None = None
    # At plan time (dry-run too; reads only): complete the action's args with what the tool will do
    # (route-model: the repository, branch and diff a person approves), and give a reason to only
    # report it ('' when it may go on to the guard). (clients, args) -> (args, report_reason).
    prepare: Callable[[Any, dict[str, Any]], tuple[dict[str, Any], str]] | None = None


tools: Registry[ToolSpec] = Registry("tool", modules=(
    "costwarden.tools.aws.ebs", "costwarden.tools.aws.ec2", "costwarden.tools.aws.eip",
    "costwarden.tools.aws.sagemaker",
    "costwarden.tools.gcp.compute",  # imports the Google SDK only when a tool runs
    "costwarden.tools.litellm_proxy.caps",
    "costwarden.tools.gateway.route",  # LiteLLM router config changes, pushed with git
))


def register_tool(spec: ToolSpec) -> ToolSpec:
    return tools.add(spec.name, spec)


def get_tool(name: str) -> ToolSpec:
    """The tool of that name; UnknownName (a KeyError) listing the known tools otherwise."""
    return tools.get(name)


def tool_names() -> list[str]:
    return tools.names()
