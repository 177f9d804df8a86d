"""LiteLLM's database as a usage source next to files: one rollup, each period read once.

`billing.litellm_database_url` alone (no files) is enough for the token views; a second open reads
nothing new (the watermark), so a sweep every few minutes never counts a request twice; files and
the database add up.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.llm.usage import litellm_source_key, open_usage
from tests.test_litellm_db import requests, url, write  # noqa: F401 - `url` is the fixture (SQLite, PostgreSQL)

END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
START = END - timedelta(days=3)


def _totals(billing: BillingSettings) -> tuple[int, int]:
    log = open_usage(billing)
    groups = log.groups(START - timedelta(days=1), END + timedelta(days=1))
    return sum(g.requests for g in groups), sum(g.input_tokens for g in groups)


def test_litellm_database_alone_feeds_the_usage_views_once(url, tmp_path):  # noqa: F811
    rows = requests(300, seed=7, start=START, end=END)
    write(url, rows, daily=False)
    billing = BillingSettings(litellm_database_url=url, litellm_database_source="spend_logs")
    assert billing.has_usage
    expected = (len(rows), sum(r["prompt_tokens"] for r in rows))
    assert _totals(billing) == expected
    assert _totals(billing) == expected  # the second sweep reads no period again
    log = open_usage(billing)
    mark = log.rollup.watermark(litellm_source_key(url))
    assert mark is not None and datetime.fromisoformat(mark) >= END
    assert "s3cret" not in litellm_source_key("postgresql+psycopg://reader:s3cret@db:5432/litellm")


def test_files_and_litellm_database_add_up(url, tmp_path):  # noqa: F811
    rows = requests(120, seed=11, start=START, end=END)
    write(url, rows, daily=False)
    spans = tmp_path / "spans.jsonl"
    t0 = START + timedelta(hours=5)
    spans.write_text("".join(json.dumps({
        "spanId": f"{i:016x}", "timestamp": (t0 + timedelta(minutes=i)).isoformat(),
        "attributes": {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
                       "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10,
                       "costwarden.feature": "search"}}) + "\n" for i in range(40)))
    billing = BillingSettings(usage_paths=[str(spans)], litellm_database_url=url,
                              litellm_database_source="spend_logs")
    assert _totals(billing) == (len(rows) + 40, sum(r["prompt_tokens"] for r in rows) + 40 * 100)


def test_litellm_tenants_count_once_across_cells_hours_and_files(url, tmp_path):  # noqa: F811
    """A tenant in several hourly cells of LiteLLM's database (and in a file) is one distinct user:
    the cells' tenant sets merge exactly instead of their counts being summed."""
    rows = requests(300, seed=5, start=START, end=END)
    write(url, rows, daily=False)
    spans = tmp_path / "spans.jsonl"
    t0 = START + timedelta(hours=1)
    spans.write_text("".join(json.dumps({
        "spanId": f"{i:016x}", "timestamp": (t0 + timedelta(minutes=i)).isoformat(),
        "attributes": {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 5,
                       "costwarden.tenant": ("acme", "newco")[i % 2], "costwarden.tier": "unknown"}}) + "\n"
        for i in range(10)))
    billing = BillingSettings(usage_paths=[str(spans)], litellm_database_url=url, litellm_database_source="spend_logs")
    log = open_usage(billing)
    window = (START - timedelta(days=1), END + timedelta(days=1))
    tenants: dict[str, set[str]] = {}
    for r in rows:
        tier = next((t.split(":", 1)[1] for t in r["request_tags"] if t.startswith("tier:")), "unknown")
        if r["end_user"] or r["user"]:
            tenants.setdefault(tier, set()).add(r["end_user"] or r["user"])
    tenants.setdefault("unknown", set()).update({"acme", "newco"})
    assert log.tier_users(*window) == {t: len(v) for t, v in tenants.items()}
    cells = sum(g.users for g in log.groups(*window))  # per cell, the same tenants in many cells
    assert cells > sum(len(v) for v in tenants.values())
