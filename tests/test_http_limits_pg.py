"""200 concurrent signed clicks on one action with the store (and the approval checkpoints) on
the local PostgreSQL: exactly one execution, every request answered. tests/test_http_limits.py
has the SQLite run; here the claim races over real PostgreSQL connections from many threads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.slack import interaction, sign
from tests.test_approvals import ALICE, BOB, SECRET, live_world, slack  # noqa: F401 - fixture
from tests.test_http_limits import post
from costwarden.tools.slack import APPROVE


@pytest.fixture
def pg_world(aws, slack, tmp_path: Path, no_costwarden_env) -> Iterator[dict[str, Any]]:  # noqa: F811
    """test_approvals' world, on a throwaway PostgreSQL database."""
    from tests.pg import throwaway_database

    with throwaway_database("cw_clicks") as url, live_world(aws, slack, tmp_path, url) as world:
        yield world


def test_200_concurrent_signed_clicks_on_postgresql_execute_exactly_once(pg_world, aws):
    store, target, port = pg_world["store"], pg_world["actions"]["llm-finetune-01"], pg_world["server"].port
    assert store.engine.dialect.name == "postgresql"

    def one(i: int) -> tuple[int, dict[str, Any]]:
        body = interaction(ALICE if i % 2 else BOB, APPROVE, target)
        return post(port, body, sign(body, SECRET), timeout=60)

    started = time.monotonic()
    with ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(one, range(200)))
    assert [s for s, _ in answers] == [200] * 200  # every request answered
    texts = [a["text"] for _, a in answers]
    assert sum(t.startswith("Approved") for t in texts) == 1  # one click won the vote ...
    stops = aws.requests_for("StopInstances")
    assert [r["InstanceId.1"] for r in stops] == [pg_world["ids"]["llm-finetune-01"]]  # ... one execution
    assert store.get_action(target).status == "done"
    claims = [d for d in store.decisions(action_id=target) if d.stage == "execute"]
    assert [d.decision for d in claims] == ["claimed"]
    assert time.monotonic() - started < 45
