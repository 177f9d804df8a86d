"""The slow half of an approval click (resume the thread, call the cloud, update the message) runs
after Slack has its answer, on a thread the daemon joins at shutdown within its time budget."""

from __future__ import annotations

import threading
import time
import urllib.request

from costwarden.agent.server.daemon import Daemon
from costwarden.agent.server.slack_http import Interactions
from tests.fakes.slack import interaction, sign
from tests.test_approvals import ALICE, SECRET, slack, world  # noqa: F401 - fixtures
from costwarden.tools.slack import APPROVE


def test_shutdown_waits_for_an_approved_click_to_finish_executing(world, aws):
    """A click is answered at once; a clean stop a moment later still lets its StopInstances
    complete and be recorded, instead of killing the daemon thread half-way."""
    settings, store = world["settings"], world["store"]
    target, ids = world["actions"]["llm-finetune-01"], world["ids"]
    aws.hold("StopInstances", 1.5, matching=ids["llm-finetune-01"])  # applied, answered 1.5 s later
    daemon = Daemon(settings.model_copy(update={"policies": [world["settings"].state_dir.parent / "p.yml"],
                                                "shutdown_timeout_seconds": 30}), host="127.0.0.1", port=0)
    daemon.http.start()
    body = interaction(ALICE, APPROVE, target)
    req = urllib.request.Request(f"http://127.0.0.1:{daemon.http.port}/slack/interactions", data=body,
                                 headers=sign(body, SECRET), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and b"executing now" in r.read()
    deadline = time.monotonic() + 20
    while not aws.requests_for("StopInstances") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert daemon.interactions.followups_running() == 1
    assert store.get_action(target).status == "pending"  # the stop is under way
    started = time.monotonic()
    assert daemon.shutdown() == 0
    assert time.monotonic() - started >= 0.5  # it waited for the follow-up ...
    assert daemon.interactions.followups_running() == 0
    assert store.get_action(target).status == "done"  # ... which recorded its outcome
    assert len(aws.requests_for("StopInstances")) == 1


def test_joining_follow_ups_is_bounded_and_counts_what_is_still_running(tmp_path, no_costwarden_env):
    from costwarden.agent.config import Settings
    from costwarden.state.store import Store

    settings = Settings(state_dir=tmp_path / "state")
    interactions = Interactions(settings, Store(settings.db_url), lambda: {})
    release = threading.Event()
    interactions._later(release.wait)  # noqa: SLF001 - a follow-up that does not end by itself
    interactions._later(lambda: None)  # noqa: SLF001 - one that ends at once
    started = time.monotonic()
    assert interactions.join_followups(0.3) == 1
    assert 0.25 <= time.monotonic() - started < 2
    release.set()
    assert interactions.join_followups(5) == 0 and interactions.followups_running() == 0
