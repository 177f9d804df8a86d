"""LiteLLMDatabase on SQLite and the local PostgreSQL, against tables made from litellm's own schema.prisma.

Spend logs are generated at random (seeded), written to LiteLLM_SpendLogs, and folded into the
daily tables the way the proxy's DBSpendUpdateWriter does (one LiteLLM_DailyUserSpend row per
user/day/key/model/provider, one LiteLLM_DailyTagSpend row per tag); the expected cells are
computed in Python from the same requests and compared with what the database aggregated.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, insert

from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.litellm_db import LiteLLMDatabase
from tests.litellm_schema import create_tables
from tests.pg import throwaway_database

NOW = datetime(2025, 12, 10, 12, 0, tzinfo=timezone.utc)
START = datetime(2025, 12, 1, tzinfo=timezone.utc)
MODELS = [("gpt-4o-mini", "openai", "chat"), ("azure/gpt-4o", "", "summaries"), ("claude-sonnet-4", "anthropic", "")]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'litellm.db'}"
    else:
        with throwaway_database("litellm") as u:
            yield u


def requests(n: int, seed: int, start: datetime = START, end: datetime = NOW) -> list[dict]:
    rnd = random.Random(seed)
    span = (end - start).total_seconds()
    out = []
    for i in range(n):
        model, provider, group = rnd.choice(MODELS)
        tags = []
        if rnd.random() < 0.6:
            tags.append(f"feature:{rnd.choice(['helpdesk', 'search'])}")
        if rnd.random() < 0.5:
            tags.append(f"tier:{rnd.choice(['free', 'pro'])}")
        if rnd.random() < 0.2:
            tags.append("env:prod")
        rnd.shuffle(tags)
        out.append({"request_id": f"r{seed}-{i}", "call_type": "acompletion", "api_key": rnd.choice(["k1", "k2"]),
                    "spend": round(rnd.random() / 100, 6), "prompt_tokens": rnd.randint(0, 4000),
                    "completion_tokens": rnd.randint(0, 800),
                    "startTime": (start + timedelta(seconds=rnd.random() * span)).replace(tzinfo=None),
                    "endTime": end.replace(tzinfo=None), "model": model, "model_group": group,
                    "custom_llm_provider": provider, "request_tags": tags,
                    "end_user": rnd.choice(["", "acme", "globex", "initech"]), "user": rnd.choice(["u1", "u2", ""]),
                    "status": "success" if rnd.random() < 0.9 else "failure",
                    "cache_read": rnd.randint(0, 100)})  # only the daily tables carry cache tokens
    return out


def write(url: str, rows: list[dict], *, daily: bool = True) -> None:
    engine = create_engine(url)
    tables = create_tables(engine)
    with engine.begin() as con:
        con.execute(insert(tables["LiteLLM_SpendLogs"]), [{k: v for k, v in r.items() if k != "cache_read"}
                                                          for r in rows])
        if daily:
            for name, keys in (("LiteLLM_DailyUserSpend", ["user"]), ("LiteLLM_DailyTagSpend", ["tag"])):
                cells = fold(rows, keys[0])
                con.execute(insert(tables[name]), cells) if cells else None
    engine.dispose()


def fold(rows: list[dict], entity: str) -> list[dict]:
    """The proxy's daily upsert: sums per (entity, date, api_key, model, provider)."""
    cells: dict[tuple, dict] = {}
    for r in rows:
        for who in (r["request_tags"] if entity == "tag" else [r["user"]]):
            key = (who, r["startTime"].strftime("%Y-%m-%d"), r["api_key"], r["model"], r["custom_llm_provider"])
            c = cells.setdefault(key, {("tag" if entity == "tag" else "user_id"): who, "date": key[1],
                                       "api_key": key[2], "model": key[3], "custom_llm_provider": key[4],
                                       "model_group": r["model_group"], "prompt_tokens": 0, "completion_tokens": 0,
                                       "cache_read_input_tokens": 0, "spend": 0.0, "api_requests": 0,
                                       "successful_requests": 0, "failed_requests": 0})
            c["prompt_tokens"] += r["prompt_tokens"]
            c["completion_tokens"] += r["completion_tokens"]
            c["cache_read_input_tokens"] += r["cache_read"]
            c["spend"] += r["spend"]
            c["api_requests"] += 1
            c["successful_requests" if r["status"] == "success" else "failed_requests"] += 1
    return list(cells.values())


def tag(r: dict, name: str) -> str | None:
    return next((t.split(":", 1)[1] for t in r["request_tags"] if t.startswith(name + ":")), None)


def provider_of(r: dict) -> str:
    return r["custom_llm_provider"] or (r["model"].split("/")[0] if "/" in r["model"] else "unknown")


def test_spend_logs_are_aggregated_hourly_in_the_database(url):
    rows = requests(600, seed=1)
    write(url, rows, daily=False)
    cells, watermark = LiteLLMDatabase(url, clock=lambda: NOW).read(None)
    assert watermark == datetime(2025, 12, 10, 11, tzinfo=timezone.utc)  # whole hours that ended 15 min ago

    expected: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0, set()])
    for r in rows:
        if r["startTime"] >= watermark.replace(tzinfo=None):
            continue
        hour = r["startTime"].replace(minute=0, second=0, microsecond=0, tzinfo=timezone.utc)
        key = (hour, tag(r, "feature") or r["model_group"] or "unattributed", tag(r, "tier") or "unknown",
               r["model"], provider_of(r), r["status"])
        e = expected[key]
        e[0] += 1
        e[1] += r["prompt_tokens"]
        e[2] += r["completion_tokens"]
        e[3] += r["spend"]
        if r["end_user"] or r["user"]:
            e[4].add(r["end_user"] or r["user"])
    got = {(c.hour, c.feature, c.tier, c.model, c.provider, c.outcome): c for c in cells}
    assert set(got) == set(expected)
    for key, (n, i, o, spend, tenants) in expected.items():
        c = got[key]
        assert (c.requests, c.input_tokens, c.output_tokens, c.tenants) == (n, i, o, len(tenants)), key
        assert c.tenant_ids == tuple(sorted(tenants)), key  # few tenants a cell: the set itself comes back
        assert c.reported_cost == pytest.approx(spend)


def test_daily_tables_are_preferred_and_split_by_feature_tag(url):
    rows = requests(800, seed=2)
    write(url, rows)
    cells, watermark = LiteLLMDatabase(url, clock=lambda: NOW).read(None)
    assert watermark == datetime(2025, 12, 10, tzinfo=timezone.utc)  # today is still being written
    assert {c.hour.time() for c in cells} == {datetime.min.time()} and {c.tier for c in cells} == {"unknown"}

    expected: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0])
    for r in rows:
        if r["startTime"] >= watermark.replace(tzinfo=None):
            continue
        day = r["startTime"].replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=timezone.utc)
        e = expected[(day, tag(r, "feature") or r["model_group"] or "unattributed", r["model"], provider_of(r))]
        e[0 if r["status"] == "success" else 1] += 1
        e[2] += r["prompt_tokens"]
        e[3] += r["completion_tokens"]
        e[4] += r["cache_read"]
        e[5] += r["spend"]
    got: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, 0.0])
    for c in cells:
        g = got[(c.hour, c.feature, c.model, c.provider)]
        g[0 if c.outcome == "success" else 1] += c.requests
        g[2] += c.input_tokens
        g[3] += c.output_tokens
        g[4] += c.cache_read_tokens
        g[5] += c.reported_cost or 0.0
    assert set(got) == set(expected)
    for key, e in expected.items():
        assert got[key][:5] == e[:5], key
        assert got[key][5] == pytest.approx(e[5], abs=1e-9)


@pytest.mark.parametrize("source", ["spend_logs", "daily"])
def test_watermarks_read_every_period_once(url, source):
    first = requests(300, seed=3, end=NOW - timedelta(days=2))
    write(url, first)
    db = LiteLLMDatabase(url, source=source, clock=lambda: NOW - timedelta(days=2))
    cells1, mark1 = db.read(None)
    # more traffic arrives, some of it (late spend-log batches) in the period already read? no: after mark1
    later = requests(200, seed=4, start=mark1, end=NOW)
    engine = create_engine(url)
    tables = create_tables(engine)
    with engine.begin() as con:
        con.execute(insert(tables["LiteLLM_SpendLogs"]), [{k: v for k, v in r.items() if k != "cache_read"}
                                                          for r in later])
        con.execute(insert(tables["LiteLLM_DailyUserSpend"]), fold(later, "user"))
        con.execute(insert(tables["LiteLLM_DailyTagSpend"]), fold(later, "tag"))
    engine.dispose()
    db.clock = lambda: NOW
    cells2, mark2 = db.read(mark1)
    assert mark2 > mark1
    whole, mark_whole = LiteLLMDatabase(url, source=source, clock=lambda: NOW).read(None)
    assert mark_whole == mark2

    def totals(cells):
        return (sum(c.requests for c in cells), sum(c.input_tokens for c in cells), sum(c.output_tokens for c in cells))

    assert totals(cells1) != (0, 0, 0) and totals(cells2) != (0, 0, 0)
    assert tuple(a + b for a, b in zip(totals(cells1), totals(cells2))) == totals(whole)
    assert max(c.hour for c in cells1) < mark1 <= min(c.hour for c in cells2)
    db.close()


def test_refusals_are_one_line(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    create_engine(empty).connect().close()
    with pytest.raises(BillingInputError, match="neither LiteLLM_DailyUserSpend nor LiteLLM_SpendLogs"):
        LiteLLMDatabase(empty).read(None)
    with pytest.raises(BillingInputError, match="no LiteLLM_DailyUserSpend table"):
        LiteLLMDatabase(empty, source="daily").read(None)
    with pytest.raises(BillingInputError) as exc:
        LiteLLMDatabase("postgresql+psycopg://cw:s3cret@127.0.0.1:1/litellm?connect_timeout=2").read(None)
    assert "s3cret" not in str(exc.value) and "\n" not in str(exc.value)


def test_the_reader_never_writes(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    write(url, requests(20, seed=5))
    db = LiteLLMDatabase(url, clock=lambda: NOW)
    with db.engine.connect() as con:
        db.read_only(con)
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        with pytest.raises(OperationalError, match="readonly|read-only|query_only"):
            con.execute(text('DELETE FROM "LiteLLM_SpendLogs"'))
    db.close()
