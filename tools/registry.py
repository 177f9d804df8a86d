"""The guarded tools: each cloud action is one function registered here, next to its observer.

`observe` reads the resource's real state without changing it: it gives the before-state that
is written with `pending`, and lets start-up reconciliation tell whether a crashed action
actually happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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


_TOOLS: dict[str, ToolSpec] = {}


def register_tool(spec: ToolSpec) -> ToolSpec:
    if spec.name in _TOOLS:
        raise RuntimeError(f"tool {spec.name!r} registered twice")
    _TOOLS[spec.name] = spec
    return spec


def get_tool(name: str) -> ToolSpec:
    _load_builtin()
    try:
        return _TOOLS[name]
    except KeyError:
        raise KeyError(f"unknown tool {name!r}; known: {', '.join(sorted(_TOOLS))}") from None


def tool_names() -> list[str]:
    _load_builtin()
    return sorted(_TOOLS)


def _load_builtin() -> None:
    import costwarden.tools.aws.ebs  # noqa: F401
    import costwarden.tools.aws.ec2  # noqa: F401
    import costwarden.tools.aws.eip  # noqa: F401
    import costwarden.tools.aws.sagemaker  # noqa: F401
    import costwarden.tools.gcp.compute  # noqa: F401 - imports the Google SDK only when a tool runs
