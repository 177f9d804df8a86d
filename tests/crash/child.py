"""Approval clicks, each in a process of its own, that stop at a chosen step and wait to be killed.

    python -m tests.crash.child '{"steps": {"claim": "<action id>", ...}, "settings": {...}, ...}'

The process imports once and forks one child per step, printing `pid <step> <pid>` for each on
stdout; a child prints `reached <step>` there when it gets to its step, then sleeps: the test
SIGKILLs it there, so nothing after that point happens and nothing is cleaned up.

Each child runs the real path: a signed Slack click through the interactions handler (signature,
workspace pin, allow-list), the vote claimed in the store, the approval thread resumed, the
action claimed, StopInstances sent to moto, the new state verified and recorded, the Slack
message updated.

Steps: `vote` (approved, not claimed), `claim` (pending, nothing sent), `verify` (the stop is
applied and verified, its record not written), `record` (done, the Slack message not updated).
The `act` step needs no hook here: the test makes moto apply the stop and hold its answer, and
kills that child while it waits for it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

from costwarden.agent.config import Settings
from costwarden.state.store import Store


def _say(line: str) -> None:
    """One write(2) per line: the forked processes share the pipe, and print() may split a line
    into two writes that another process's line lands between."""
    sys.stdout.flush()
    os.write(1, f"{line}\n".encode())


def stop_here(step: str) -> None:
    _say(f"reached {step}")
    time.sleep(3600)  # the test kills us; if it does not, its own timeout fails the test


def install(step: str) -> None:
    """Wrap the store write that ends `step`, so the process stops right after (or, for
    `verify`, right before) it."""
    original: Any
    if step == "vote":
        original = Store.vote

        def vote(self: Store, *a: Any, **kw: Any) -> str:
            out = original(self, *a, **kw)
            if out == "approved":
                stop_here(step)
            return out

        Store.vote = vote  # type: ignore[method-assign]
    elif step == "claim":
        original = Store.claim_action

        def claim(self: Store, *a: Any, **kw: Any) -> bool:
            won = original(self, *a, **kw)
            if won:
                stop_here(step)
            return won

        Store.claim_action = claim  # type: ignore[method-assign]
    elif step in ("verify", "record"):
        original = Store.complete_action

        def complete(self: Store, *a: Any, **kw: Any) -> None:
            if step == "verify":
                stop_here(step)
            original(self, *a, **kw)
            stop_here(step)

        Store.complete_action = complete  # type: ignore[method-assign]


def click(cfg: dict[str, Any], settings: Settings, policies: dict[str, Any], step: str, action_id: str) -> None:
    """The forked child: one Approve click on `action_id`, stopping at `step`."""
    from costwarden.agent.server.slack_http import InteractionHandler
    from costwarden.tools.slack import APPROVE
    from tests.fakes.slack import interaction, sign

    install(step)
    store = Store(settings.db_url)
    handler = InteractionHandler(settings, store, lambda: policies, background=False)
    body = interaction(cfg["user"], APPROVE, action_id)
    headers = {k.lower(): v for k, v in sign(body, cfg["secret"]).items()}
    response = handler(headers, body)
    _say(f"finished {step} {response.status}")  # the test expected to kill us before this


def main(arg: str) -> int:
    """Import and parse once, then fork one child per step (each a whole process the test can
    SIGKILL): five cold starts of the same imports would cost the test more than all the rest."""
    import costwarden.agent.engine.approvals  # noqa: F401 - warm the imports every child needs
    import costwarden.agent.server.slack_http  # noqa: F401
    import costwarden.tools.aws.ec2  # noqa: F401
    from costwarden.policies.loader import load_policy_file

    cfg = json.loads(arg)
    settings = Settings.model_validate(cfg["settings"])  # plain values: secrets travel as text
    policies = {p.name: p for p in load_policy_file(cfg["policy_file"])}
    pids = []
    for step, action_id in cfg["steps"].items():
        pid = os.fork()  # no thread, socket or database connection is open yet: safe to fork
        if pid == 0:
            code = 0
            try:
                click(cfg, settings, policies, step, action_id)
            except BaseException:  # noqa: BLE001 - say why on stderr; the test shows it
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _say(f"pid {step} {pid}")
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
