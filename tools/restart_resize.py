"""Resize an instance that may be running: stop, change the type, start again, in one guarded run.

Provider-neutral: EC2 and Compute Engine each hand in a `Machine` (their own calls and read-back),
and this module decides what is left to do from the instance's real state, so a rerun after a
crash finishes the job instead of repeating it.

The mark is what makes that possible. Before stopping a running instance, the flow tags it
`<mark>=<original type>`. A stopped instance with the mark is one Costwarden stopped and must start
again; a stopped instance without it was stopped by someone else and stays stopped. The mark is
removed only once the instance runs again, so every crash point leaves a state a rerun can read:

    running, old type, no mark  -> mark, stop, change, start, unmark (the whole job)
    running, old type, marked   -> stop, change, start, unmark        (crashed before the stop)
    stopped, old type, marked   -> change, start, unmark              (crashed after the stop)
    stopped, new type, marked   -> start, unmark                      (crashed after the change)
    running, new type, marked   -> unmark                             (crashed after the start)
    new type, no mark           -> nothing                            (done; a stopped one stays stopped)
    stopped, old type, no mark  -> change                             (it was stopped before: not started)

A change or a start that the cloud refuses (an incompatible type, no capacity for the new type)
puts the original type back and starts the instance again, and the run reports the failure in
one line. Only if that restore fails too is the instance left stopped, still marked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.registry import ToolOutcome
from costwarden.tools.verify import read_back

# A provider's states, sorted into what the flow needs to tell apart.
RUNNING, STARTING, STOPPING, STOPPED, OTHER = "running", "starting", "stopping", "stopped", "other"


@dataclass(frozen=True)
class Seen:
    """One read of the instance: the provider's own observation (`raw`, what gets recorded) and the
    facts the flow decides on."""

    raw: dict[str, Any]
    phase: str  # RUNNING | STARTING | STOPPING | STOPPED | OTHER
    state: str  # the provider's word for it, for messages
    type: str
    mark: str | None  # the original type our mark holds; None when the instance carries no mark


class Machine(Protocol):
    """One instance's calls on one cloud. Each call makes one request (plus, on GCE, the wait for its
    operation) and raises ToolError in one line when the cloud refuses it."""

    name: str  # for messages: 'ec2 instance i-0abc' / 'gce instance p/zone/name'
    mark_key: str

    def look(self) -> Seen: ...
    def mark(self, original_type: str) -> None: ...
    def unmark(self) -> None: ...
    def stop(self) -> None: ...
    def set_type(self, instance_type: str) -> None: ...
    def start(self) -> None: ...


def is_resized(seen_type: str, target: str, mark: str | None) -> bool:
    """Done means: the new type is in place and the mark is gone (so nothing is left to start)."""
    return seen_type == target and mark is None


def _wait(m: Machine, settled: Callable[[Seen], bool], timeout_s: float, poll_s: float) -> Seen:
    box: dict[str, Seen] = {}

    def observe() -> dict[str, Any]:
        box["seen"] = m.look()
        return box["seen"].raw

    read_back(observe, lambda _raw: settled(box["seen"]), timeout_s=timeout_s, poll_s=poll_s)
    return box["seen"]


def resize_with_restart(m: Machine, target: str, *, timeout_s: float, poll_s: float = 1.0) -> ToolOutcome:
    """Bring the instance to `target`, running again if it ran before (see the module docstring)."""
    if not target:
        raise ToolError(f"{m.name}: no target type given")
    seen = m.look()
    if seen.phase == OTHER:
        raise ToolError(f"{m.name} is {seen.state}; only a running or stopped instance can be resized")
    if is_resized(seen.type, target, seen.mark):
        return ToolOutcome(True, seen.raw, f"already {target}; nothing to do")
    original = seen.mark or seen.type
    ours = seen.mark is not None or seen.phase in (RUNNING, STARTING)  # we stop it, so we start it again
    if seen.type != target:
        if seen.phase == STARTING:  # neither cloud stops an instance that is still booting
            seen = _wait(m, lambda s: s.phase != STARTING, timeout_s, poll_s)
        if seen.phase == RUNNING:
            if seen.mark is None:
                m.mark(original)  # before the stop: a run cut off after it still knows to start again
            m.stop()
        seen = _wait(m, lambda s: s.phase == STOPPED, timeout_s, poll_s)
        if seen.phase != STOPPED:  # the mark stays: a rerun picks up from here
            return ToolOutcome(False, seen.raw, f"{m.name} is still {seen.state} {timeout_s:g}s after the stop")
        try:
            m.set_type(target)
        except DryRunViolation:
            raise
        except ToolError as exc:
            return _restore(m, original, ours, str(exc), timeout_s, poll_s)
        seen = _wait(m, lambda s: s.type == target, timeout_s, poll_s)
        if seen.type != target:
            return _restore(m, original, ours, f"{m.name} is still {seen.type} after the change to {target}",
                            timeout_s, poll_s)
    if ours:
        try:
            seen = _start(m, seen, timeout_s, poll_s)
        except DryRunViolation:
            raise
        except ToolError as exc:  # e.g. no capacity for the new type
            return _restore(m, original, ours, str(exc), timeout_s, poll_s)
        if seen.phase not in (RUNNING, STARTING):
            return _restore(m, original, ours, f"{m.name} is {seen.state} after the start as {target}",
                            timeout_s, poll_s)
        seen = _unmark(m, seen)  # it runs as `target`: a failure here leaves only the mark behind
    return ToolOutcome(True, seen.raw, "")


def _start(m: Machine, seen: Seen, timeout_s: float, poll_s: float) -> Seen:
    """Start an instance the flow stopped (if it is not running already) and wait until it runs."""
    if seen.phase == STOPPING:
        seen = _wait(m, lambda s: s.phase == STOPPED, timeout_s, poll_s)
    if seen.phase == STOPPED:
        m.start()
        seen = _wait(m, lambda s: s.phase == RUNNING, timeout_s, poll_s)
    return seen


def _unmark(m: Machine, seen: Seen) -> Seen:
    if seen.mark is None:
        return seen
    m.unmark()
    return m.look()


def _restore(m: Machine, original: str, ours: bool, why: str, timeout_s: float, poll_s: float) -> ToolOutcome:
    """Put the original type back and, if the flow stopped the instance, start it again.

    Returns a failed outcome whose one-line detail says why the resize failed and what was restored;
    raises ToolError in one line if the restore fails too, saying how the instance is left (a stopped
    one keeps its mark, for a person to see)."""
    changed_back = False
    last = "stopped"
    try:
        seen = m.look()
        last = seen.state
        if seen.type != original:
            changed_back = True
            if seen.phase in (RUNNING, STARTING):  # never stop it a second time to undo a change
                raise ToolError(f"it is {seen.state} as {seen.type}")
            if seen.phase != STOPPED:
                seen = _wait(m, lambda s: s.phase == STOPPED, timeout_s, poll_s)
                last = seen.state
            m.set_type(original)
            seen = _wait(m, lambda s: s.type == original, timeout_s, poll_s)
            if seen.type != original:
                raise ToolError(f"still {seen.type}")
        if ours:
            seen = _start(m, seen, timeout_s, poll_s)
            last = seen.state
            if seen.phase not in (RUNNING, STARTING):
                raise ToolError(f"it is {seen.state} after the start")
            seen = _unmark(m, seen)
    except DryRunViolation:
        raise
    except ToolError as exc:
        marked = f", marked {m.mark_key}={original}" if ours else ""
        raise ToolError(f"{why}; restoring {original} failed too ({exc}): {m.name} is left {last}{marked}") from None
    if changed_back:
        done = f"restored {original}" + (" and started it again" if ours else "")
    else:
        done = f"started it again as {original}" if ours else f"unchanged ({original}, {seen.state})"
    return ToolOutcome(False, seen.raw, f"{why}; {done}")
