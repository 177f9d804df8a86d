"""The store: WAL mode, atomic claims (the heart of exactly-once), an append-only trail."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.store import Store, StoreError


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(f"sqlite:///{tmp_path}/cw.db")
    s.start_run("run_1", dry_run=False, policies=["p"], trigger="test")
    f = Finding("fnd_1", "p", "idle-gpu", "aws", "1", "us-east-1", "i-1", "aws.ec2", {"x": 1}, Decimal("10.50"), "low")
    s.add_findings("run_1", [f])
    a = PlannedAction("act_1", "fnd_1", "p", "stop", "aws.ec2.stop_instance", {"instance_id": "i-1"},
                      Decimal("10.50"), "aws:1:us-east-1:i-1", decision="auto", reason="ok", status="planned")
    s.add_action("run_1", a, policy_hash="h" * 64)
    return s


def test_sqlite_runs_in_wal_mode(store):
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_claim_is_won_once(store):
    kw = dict(from_statuses=("planned",), before_state={"state": "running"}, run_id="run_1", policy="p",
              policy_hash="h")
    assert store.claim_action("act_1", **kw) is True
    assert store.claim_action("act_1", **kw) is False  # a retry, a double click, another replica
    assert store.get_action("act_1").status == "pending"
    assert [a.id for a in store.actions_in_limbo()] == ["act_1"]
    store.complete_action("act_1", ok=True, after_state={"state": "stopped"}, error=None, run_id="run_1",
                          policy="p", policy_hash="h")
    row = store.get_action("act_1")
    assert (row.status, row.before_state, row.after_state) == ("done", {"state": "running"}, {"state": "stopped"})
    trail = [(d.stage, d.decision) for d in store.decisions(action_id="act_1")]
    assert trail == [("guard", "auto"), ("execute", "claimed"), ("execute", "already-claimed"), ("verify", "done")]


def test_run_totals_and_findings(store):
    store.finish_run("run_1", status="done", errors=[], monthly_waste=Decimal("10.50"),
                     projected_savings=Decimal("10.50"))
    run = store.get_run("run_1")
    assert run.status == "done" and run.finished_at is not None
    assert run.monthly_waste_usd == Decimal("10.50")
    assert [f.id for f in store.findings_for_run("run_1")] == ["fnd_1"]


def test_unopenable_database_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(StoreError, match="cannot open database"):
        Store(f"sqlite:///{tmp_path}/file/sub/cw.db")


def test_password_is_not_in_the_error():
    with pytest.raises(StoreError) as exc:
        Store("postgresql+psycopg2://u:s3cret@127.0.0.1:1/x")
    assert "s3cret" not in str(exc.value)


@pytest.fixture
def pg_url():
    """A throwaway database on the local PostgreSQL, for the multi-replica mode."""
    pytest.importorskip("psycopg")
    import secrets

    from sqlalchemy import create_engine, text

    admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
    name = f"costwarden_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 not usable: {exc.__class__.__name__}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def test_two_replicas_on_postgresql_claim_an_action_once(pg_url):
    from concurrent.futures import ThreadPoolExecutor

    first = Store(pg_url)
    first.start_run("run_1", dry_run=False, policies=["p"], trigger="test")
    first.add_findings("run_1", [Finding("fnd_1", "p", "idle-gpu", "aws", "1", "us-east-1", "i-1", "aws.ec2", {},
                                         Decimal("1"), "low")])
    first.add_action("run_1", PlannedAction("act_1", "fnd_1", "p", "stop", "aws.ec2.stop_instance", {},
                                            Decimal("1"), "k", decision="auto", status="planned"), policy_hash="h")
    second = Store(pg_url)  # another replica, same database
    kw = dict(from_statuses=("planned",), before_state=None, run_id="run_1", policy="p", policy_hash="h")
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda s: s.claim_action("act_1", **kw), [first, second] * 4))
    assert wins.count(True) == 1
    first.close()
    second.close()
