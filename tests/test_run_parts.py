"""The parts of a fanned-out run (state/store/parts.py) on SQLite: the last part closes the run
with its parts' sums, a finished part is never begun or finished again, and a start-up does not
mark a fanned-out run interrupted (its workers carry on). The same code runs on PostgreSQL in
tests/test_fanout_pg.py, with real workers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.state.store import Store
from costwarden.state.store.parts import PartKey

CALLS = [{"service": "ec2", "operation": "DescribeInstances", "count": 1}]


def _store(tmp_path: Path, name: str = "cw.db") -> Store:
    return Store(f"sqlite:///{tmp_path / name}")


def _plan(store: Store, run_id: str, n: int) -> list[PartKey]:
    store.start_run(run_id, dry_run=True, policies=["p"], trigger="schedule")
    keys = [PartKey(run_id, "p", f"{i:012d}", "us-east-1", f"arn:aws:iam::{i:012d}:role/r") for i in range(n)]
    assert store.plan_parts(keys) == n
    assert store.plan_parts(keys) == 0  # planning the tick again adds nothing
    return keys


def test_a_part_is_swept_once_and_the_last_one_closes_the_run(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a, b = _plan(store, "run_x", 2)
    assert store.begin_part(a, "w1") == 1
    assert store.begin_part(a, "w2") == 2  # a retry (the first worker died): a second attempt
    assert not store.finish_part(a, status="done", errors=[], monthly_waste=Decimal("10.5"),
                                 projected_savings=Decimal(3), api_calls=CALLS)
    assert store.begin_part(a, "w3") is None  # done: a third delivery of its job sweeps nothing
    assert not store.finish_part(a, status="failed", errors=["late"], monthly_waste=Decimal(99),
                                 projected_savings=Decimal(0), api_calls=CALLS)  # the first finish stands
    assert store.get_run("run_x").status == "running"
    assert store.begin_part(b, "w1") == 1
    assert store.finish_part(b, status="partial", errors=["aws 1/us-east-1: Throttling"], monthly_waste=Decimal(2),
                             projected_savings=Decimal(1), api_calls=CALLS + CALLS)
    run = store.get_run("run_x")
    assert run.status == "partial" and run.errors == [f"p {b.account}/us-east-1: aws 1/us-east-1: Throttling"]
    assert run.monthly_waste_usd == Decimal("12.5") and run.projected_monthly_savings_usd == Decimal(4)
    assert run.api_calls == [{"service": "ec2", "operation": "DescribeInstances", "count": 3}]
    store.close()


def test_a_restart_does_not_interrupt_a_fanned_out_run(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _plan(store, "run_fan", 1)
    store.start_run("run_one", dry_run=True, policies=["p"], trigger="schedule")
    assert store.interrupt_stale_runs() == 1
    assert store.get_run("run_one").status == "interrupted"
    assert store.get_run("run_fan").status == "running"
    store.close()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["done", "partial", "failed"]), st.integers(0, 10**6),
                          st.integers(0, 10**6)), min_size=1, max_size=8))
def test_the_run_totals_are_the_sums_of_its_parts(tmp_path_factory, outcomes) -> None:
    store = _store(tmp_path_factory.mktemp("parts"))
    keys = _plan(store, "run_h", len(outcomes))
    closed = []
    for key, (status, waste, savings) in zip(keys, outcomes):
        store.begin_part(key, "w")
        closed.append(store.finish_part(key, status=status, errors=[] if status == "done" else [status],
                                        monthly_waste=Decimal(waste) / 100, projected_savings=Decimal(savings) / 100,
                                        api_calls=CALLS))
    assert closed == [False] * (len(outcomes) - 1) + [True]  # exactly the last part closes it
    run = store.get_run("run_h")
    assert run.monthly_waste_usd == sum(Decimal(w) / 100 for _, w, _ in outcomes)
    assert run.projected_monthly_savings_usd == sum(Decimal(s) / 100 for _, _, s in outcomes)
    assert run.status == ("done" if all(o[0] == "done" for o in outcomes) else "partial")
    assert len(run.errors) == sum(o[0] != "done" for o in outcomes)
    assert run.api_calls == [{"service": "ec2", "operation": "DescribeInstances", "count": len(outcomes)}]
    store.close()
