"""The HyperLogLog tenant sketch: one hash on every side, registers that merge, counts never summed.

A tenant's register must be the same whether DuckDB (files, the OTLP spool, the readers),
PostgreSQL (LiteLLM's database) or Python computed it, or exact sets and sketches would not merge:
Hypothesis checks the three against each other over arbitrary unicode names.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from costwarden.tools.llm import sketch
from costwarden.tools.llm.fields import UsageAggregate
from costwarden.tools.llm.rollup import UsageRollup
from costwarden.tools.llm.usage import UsageLog
from tests.pg import throwaway_database

# what a tenant name can be in both databases: any unicode but NUL and lone surrogates
NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
HOUR = datetime(2026, 3, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    with throwaway_database("sketch") as url:
        engine = create_engine(url)
        yield engine
        engine.dispose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(NAMES, min_size=1, max_size=50))
def test_duckdb_postgresql_and_python_hash_a_tenant_alike(pg, names):
    expected = [(sketch.tenant_hash(n), *sketch.register_rank(sketch.tenant_hash(n))) for n in names]
    h = sketch.DUCKDB_HASH.format(x="t")
    duck = duckdb.connect().execute(
        f"SELECT {h}, {sketch.DUCKDB_REGISTER.format(h=h)}, {sketch.DUCKDB_RANK.format(h=h)} "
        f"FROM unnest(?::VARCHAR[]) WITH ORDINALITY u(t, i) ORDER BY i", [names]).fetchall()
    assert [tuple(r) for r in duck] == expected
    bits = sketch.PG_BITS.format(x="t")
    with pg.connect() as con:
        rows = con.execute(text(
            f"SELECT {bits}::bigint, {sketch.PG_REGISTER.format(b=bits)}, {sketch.PG_RANK.format(b=bits)} "
            f"FROM unnest(CAST(:a AS text[])) WITH ORDINALITY u(t, i) ORDER BY i"),
            {"a": names}).fetchall()
    assert [(h & (2 ** 64 - 1), r, k) for h, r, k in rows] == expected


@settings(deadline=None)  # a loaded machine: DuckDB's first query of an example can take 300 ms
@given(st.one_of(st.integers(0, 2 ** 64 - 1), st.sampled_from([0, 1, 2 ** 52 - 1, 2 ** 52, 2 ** 51, 2 ** 64 - 1])))
def test_duckdb_register_math_matches_python_on_every_edge(h):
    got = duckdb.connect().execute(f"SELECT {sketch.DUCKDB_REGISTER.format(h='$1::UBIGINT')}, "
                                   f"{sketch.DUCKDB_RANK.format(h='$1::UBIGINT')}", [h]).fetchone()
    reg, rank = sketch.register_rank(h)
    assert got == (reg, rank) and 0 <= reg < sketch.M and 1 <= rank <= sketch.MAX_RANK


@pytest.mark.parametrize("n", [100, 1_000, 10_000, 100_000])
def test_estimates_stay_within_three_standard_errors(n):
    est = sketch.estimate(sketch.registers(f"tenant-{i}" for i in range(n)))
    assert abs(est - n) <= 3 * sketch.STANDARD_ERROR * n + 1


@given(st.sets(NAMES, max_size=300), st.sets(NAMES, max_size=300))
def test_the_union_of_sketches_is_the_sketch_of_the_union(a, b):
    merged = sketch.merge(sketch.registers(a), sketch.registers(b))
    assert merged == sketch.registers(a | b)
    assert sketch.estimate(merged) == sketch.estimate(sketch.registers(a | b))


def _log() -> UsageLog:
    log = UsageLog.__new__(UsageLog)  # the readers over a bare rollup (no file, no database to sync)
    log.rollup = UsageRollup()
    return log


def _cell(hour: datetime, *, ids: set[str] | None = None, sketched: set[str] | None = None) -> UsageAggregate:
    regs = None if sketched is None else tuple(sorted(sketch.pack(*kv) for kv in sketch.registers(sketched).items()))
    return UsageAggregate(hour=hour, feature="chat", tier="pro", model="gpt-4o", provider="openai",
                          outcome="success", requests=1, input_tokens=1, output_tokens=1, cache_read_tokens=0,
                          cache_write_tokens=0, reported_cost=None,
                          tenants=len(ids if ids is not None else sketched or ()),
                          tenant_ids=tuple(sorted(ids)) if ids is not None else None, tenant_sketch=regs)


@settings(max_examples=40, deadline=None)
@given(st.sets(NAMES, min_size=17, max_size=200), st.sets(NAMES, max_size=16), st.sets(NAMES, max_size=16))
def test_rollup_merges_sketches_with_exact_tenants_and_never_sums(big, small, other):
    """A sketched hour and an exact hour of the same tier: the estimate of their union, computed by
    DuckDB over the stored registers and the exact tenants' hashes; sets alone stay exact."""
    log = _log()
    window = (HOUR, HOUR + timedelta(hours=3))
    log.rollup.add_aggregates("src", [_cell(HOUR, ids=small), _cell(HOUR + timedelta(hours=1), ids=other)], "m1")
    assert log.tier_users(*window) == ({"pro": len(small | other)} if small | other else {})
    assert not log.users_estimated(*window)
    log.rollup.add_aggregates("src", [_cell(HOUR + timedelta(hours=2), sketched=big)], "m2")
    expected = round(sketch.estimate(sketch.registers(big | small | other)))
    assert log.tier_users(*window) == {"pro": expected}
    assert log.feature_tier_users(*window) == {("chat", "pro"): expected}
    assert [g.users for g in log.groups(*window)] == [expected]
    assert log.users_estimated(*window) and not log.users_estimated(HOUR, HOUR + timedelta(hours=2))
    log.rollup.compact()  # folding keeps the largest rank of each register
    assert log.tier_users(*window) == {"pro": expected}


def test_a_store_hashed_the_old_way_is_rebuilt_once(tmp_path):
    store = str(tmp_path / "usage.duckdb")
    rollup = UsageRollup(store)
    rollup.add_aggregates("litellm:x", [_cell(HOUR, ids={"acme", "globex"})], "2026-03-01T01:00:00")
    rollup.con.execute("INSERT INTO files VALUES ('/logs/a.jsonl', 1, 2, 3, 4, 5, 'head')")
    rollup.con.execute("DELETE FROM marks WHERE source = 'rollup:tenant_hash'")  # as a store before the sketches
    rollup.close()

    rollup = UsageRollup(store)
    counts = "SELECT (SELECT COUNT(*) FROM cells), (SELECT COUNT(*) FROM tenants), (SELECT COUNT(*) FROM files)"
    assert rollup.query(counts) == [(0, 0, 0)]
    assert rollup.watermark("litellm:x") is None  # the next sync reads the source again
    assert rollup.watermark("rollup:tenant_hash") == "md5-64"
    rollup.add_aggregates("litellm:x", [_cell(HOUR, ids={"acme", "globex"})], "2026-03-01T01:00:00")
    rollup.close()

    rollup = UsageRollup(store)  # the current hash: kept as it is
    assert rollup.query(counts) == [(1, 2, 0)]
    assert rollup.query("SELECT tenant FROM tenants ORDER BY 1") == sorted(
        (sketch.tenant_hash(t),) for t in ("acme", "globex"))
    rollup.close()
