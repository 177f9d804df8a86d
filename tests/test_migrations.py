"""Schema migrations (Alembic) at store start-up, on SQLite and on the local PostgreSQL.

Every case runs on both: a fresh database, one made by the release before migrations (with and
without findings.tags), one at an older revision, one migrated by a newer release (refused), and
replicas racing to start. LangGraph's and APScheduler's tables share the database in some setups:
they are created here by those libraries themselves and must come out untouched. Finally the
models and the head migration must agree (Alembic's compare_metadata finds no difference).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from costwarden.state.domain import Finding
from costwarden.state.migrate import (
    HEAD,
    MIGRATION_LOCK_KEY,
    REVISIONS,
    SchemaError,
    alembic_config,
    classify,
    include_name,
    include_object,
)
from costwarden.state.models import Base
from costwarden.state.store import Store
from tests.pg import throwaway_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL, dropped afterwards."""
    with throwaway_database("cw_mig") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cw.db'}"
    return request.getfixturevalue("pg_url")


# --- helpers ----------------------------------------------------------------------------------
def versions(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return list(c.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def columns(url: str, table: str) -> list[str]:
    engine = create_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns(table)]
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def differences(url: str, *, ours_only: bool = True) -> list:
    """Alembic's compare of the database against state/models.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    opts = {"compare_type": True}
    if ours_only:
        opts.update(include_name=include_name, include_object=include_object)
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return compare_metadata(MigrationContext.configure(c, opts=opts), Base.metadata)
    finally:
        engine.dispose()


def previous_release(url: str, *, tags: bool, drop: tuple[str, ...] = ()) -> None:
    """The database the release before migrations left behind (create_all, no alembic_version),
    with one run and one finding in it. `tags=False`: from before findings.tags was added too."""
    engine = create_engine(url)
    try:
        Base.metadata.create_all(engine)
        with engine.begin() as c:
            c.exec_driver_sql("ALTER TABLE runs DROP COLUMN api_calls")  # 0003 came after migrations did
            c.exec_driver_sql("DROP TABLE run_parts")  # and so did 0004
            if not tags:
                c.exec_driver_sql("ALTER TABLE findings DROP COLUMN tags")
            for t in drop:
                c.exec_driver_sql(f"DROP TABLE {t}")
            c.execute(text("INSERT INTO runs (id, started_at, status, dry_run, \"trigger\", policies, errors, "
                           "monthly_waste_usd, projected_monthly_savings_usd) "
                           "VALUES ('old', CURRENT_TIMESTAMP, 'done', true, 'test', '[]', '[]', 5, 0)"))
            c.execute(text("INSERT INTO findings (id, run_id, fingerprint, policy, detector, provider, account, region, "
                           "resource_id, resource_type, evidence, monthly_waste_usd, severity, confidence, rationale, "
                           "created_at) VALUES ('fnd_old', 'old', 'fp', 'idle', 'idle-gpu', 'aws', '1', 'us-east-1', "
                           "'i-old', 'aws.ec2', '{}', 5, 'low', 'high', 'old row', CURRENT_TIMESTAMP)"))
    finally:
        engine.dispose()


def foreign_tables(url: str) -> dict[str, list[str]]:
    """Create LangGraph's checkpoint tables and APScheduler's job table with those libraries, plus a
    stored job; return each foreign table's columns, to compare after migrating."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    engine = create_engine(url)
    try:
        jobs = SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")
        jobs.jobs_t.create(engine, checkfirst=True)
        with engine.begin() as c:
            c.execute(jobs.jobs_t.insert().values(id="sweep", next_run_time=1.0, job_state=b"state"))
        if engine.dialect.name == "postgresql":
            from langgraph.checkpoint.postgres import PostgresSaver

            db = engine.url.database
            with PostgresSaver.from_conn_string(f"host=127.0.0.1 port=5432 user=postgres dbname={db}") as saver:
                saver.setup()
        else:
            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(engine.url.database, check_same_thread=False)
            SqliteSaver(conn).setup()
            conn.close()
    finally:
        engine.dispose()
    return foreign_columns(url)


def foreign_columns(url: str) -> dict[str, list[str]]:
    """Every table that is not ours (nor Alembic's) with its columns."""
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        return {t: [c["name"] for c in insp.get_columns(t)]
                for t in insp.get_table_names() if t not in Base.metadata.tables and t != "alembic_version"}
    finally:
        engine.dispose()


def add_tagged_finding(store: Store, run: str = "new") -> None:
    store.start_run(run, dry_run=True, policies=["idle"], trigger="test")
    store.add_findings(run, [Finding(f"fnd_{run}", "idle", "idle-gpu", "aws", "1", "us-east-1", f"i-{run}", "aws.ec2",
                                     {}, Decimal("1.00"), "low", tags={"team": "research"})])


# --- pure -------------------------------------------------------------------------------------
def test_the_known_revisions_are_the_scripts_in_order() -> None:
    """REVISIONS lets a store at head start without Alembic: it must be exactly the script chain."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert tuple(reversed([s.revision for s in scripts.walk_revisions()])) == REVISIONS
    assert scripts.get_current_head() == HEAD


@pytest.mark.parametrize("revisions,ours,expected", [
    ((), False, "empty"), ((), True, "pre-alembic"), (("0001",), True, "behind"), ((HEAD,), True, "head"),
    (("0099",), True, "ahead"), (("0001", "0099"), True, "ahead"),
])
def test_classify(revisions: tuple[str, ...], ours: bool, expected: str) -> None:
    assert classify(revisions, ours) == expected


def test_the_migration_lock_is_not_the_leader_lock() -> None:
    from costwarden.agent.server.leader import LOCK_KEY

    assert MIGRATION_LOCK_KEY != LOCK_KEY


# --- start-up on SQLite and PostgreSQL --------------------------------------------------------
def test_a_fresh_database_is_created_at_head(url: str) -> None:
    store = Store(url)
    assert (store.migration.path, store.migration.before, store.migration.after) == ("fresh", None, HEAD)
    add_tagged_finding(store)
    assert store.get_finding("fnd_new").tags == {"team": "research"}
    store.close()
    assert versions(url) == [HEAD]
    again = Store(url)
    assert again.migration.path == "head"  # the second start-up does nothing
    again.close()
    assert differences(url) == []


def test_a_database_from_before_migrations_without_tags_gains_the_column(url: str) -> None:
    previous_release(url, tags=False)
    assert "tags" not in columns(url, "findings") and "alembic_version" not in tables(url)
    store = Store(url)
    assert (store.migration.path, store.migration.before) == ("pre-alembic", "0001")
    assert "tags" in columns(url, "findings")
    assert store.get_finding("fnd_old").tags is None  # old rows read as untagged
    add_tagged_finding(store)
    assert store.get_finding("fnd_new").tags == {"team": "research"}
    store.close()
    assert versions(url) == [HEAD]
    assert differences(url) == []


def test_a_database_from_before_migrations_with_tags_is_stamped_not_altered(url: str) -> None:
    previous_release(url, tags=True)
    store = Store(url)
    assert (store.migration.path, store.migration.before) == ("pre-alembic", "0002")
    assert store.get_finding("fnd_old").rationale == "old row"
    store.close()
    assert versions(url) == [HEAD]
    assert differences(url) == []


def test_a_database_from_before_migrations_missing_a_table_is_completed(tmp_path: Path) -> None:
    """That release created missing tables at start-up (create_all); an older file lacks realized_savings."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    previous_release(url, tags=False, drop=("realized_savings",))
    store = Store(url)
    assert store.migration.path == "pre-alembic"
    assert "realized_savings" in tables(url)
    store.close()
    assert differences(url) == []


def test_a_database_at_an_older_revision_is_upgraded(url: str) -> None:
    from alembic import command

    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as c:
        command.downgrade(alembic_config(c), "0001")  # the downgrade works too
    engine.dispose()
    assert versions(url) == ["0001"] and "tags" not in columns(url, "findings")
    store = Store(url)
    assert (store.migration.path, store.migration.before) == ("upgrade", "0001")
    store.close()
    assert versions(url) == [HEAD] and "tags" in columns(url, "findings")


def test_a_database_at_0002_gains_runs_api_calls(url: str) -> None:
    """0003 adds runs.api_calls; a run recorded before it reads as not counted, a new one keeps its calls."""
    from alembic import command

    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as c:
        command.downgrade(alembic_config(c), "0002")
        c.execute(text("INSERT INTO runs (id, started_at, status, dry_run, \"trigger\", policies, errors, "
                       "monthly_waste_usd, projected_monthly_savings_usd) "
                       "VALUES ('old', CURRENT_TIMESTAMP, 'done', true, 'test', '[]', '[]', 5, 0)"))
    engine.dispose()
    assert versions(url) == ["0002"] and "api_calls" not in columns(url, "runs")
    store = Store(url)
    assert (store.migration.path, store.migration.before) == ("upgrade", "0002")
    old = store.get_run("old")
    assert old is not None and old.api_calls is None
    calls = [{"service": "ec2", "operation": "DescribeInstances", "count": 3}]
    store.start_run("new", dry_run=True, policies=[], trigger="test")
    store.set_run_api_calls("new", calls)
    new = store.get_run("new")
    assert new is not None and new.api_calls == calls
    store.close()
    assert versions(url) == [HEAD] and "api_calls" in columns(url, "runs")


def test_a_database_from_a_newer_release_is_refused(url: str, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(SchemaError, match=r"schema revision 0099 is newer than this costwarden knows"):
        Store(url)
    assert versions(url) == ["0099"]  # untouched

    from costwarden.agent.cli.main import main

    (tmp_path / "cw.yml").write_text(f"database_url: '{url}'\n")
    assert main(["db", "upgrade", "--config", str(tmp_path / "cw.yml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "0099" in err and "Traceback" not in err


def test_other_tables_in_the_database_are_never_touched(url: str) -> None:
    before = foreign_tables(url)
    assert {"apscheduler_jobs", "checkpoints"} <= set(before)
    # without our filters Alembic would want to drop them: the filters are what keeps them
    assert {d[1].name for d in differences(url, ours_only=False) if d[0] == "remove_table"} >= set(before)
    store = Store(url)
    assert store.migration.path == "fresh"  # their tables alone do not make it a pre-migration database
    store.close()
    assert differences(url) == []
    assert foreign_columns(url) == before
    engine = create_engine(url)
    with engine.connect() as c:
        assert c.execute(text("SELECT id FROM apscheduler_jobs")).scalars().all() == ["sweep"]
    engine.dispose()


def test_autogenerate_at_head_has_nothing_to_write(url: str) -> None:
    """A developer's `alembic revision --autogenerate` right now would produce an empty migration."""
    from alembic.autogenerate import produce_migrations
    from alembic.migration import MigrationContext

    foreign_tables(url)
    Store(url).close()
    engine = create_engine(url)
    with engine.connect() as c:
        ctx = MigrationContext.configure(c, opts={"include_name": include_name, "include_object": include_object,
                                                  "compare_type": True})
        assert produce_migrations(ctx, Base.metadata).upgrade_ops.is_empty()
    engine.dispose()


# --- replicas starting together ---------------------------------------------------------------
REPLICA = """
import sys, time
from pathlib import Path
from costwarden.state.store import Store
here, url = Path(sys.argv[1]), sys.argv[2]
(here / f"ready-{sys.argv[3]}").touch()
while not (here / "go").exists():
    time.sleep(0.005)
print(Store(url).migration.path)
"""


def _race(url: str, where: Path, n: int = 2) -> list[str]:
    """Start `n` replicas (separate processes, as in production) and let them open the store at once."""
    procs = [subprocess.Popen([sys.executable, "-c", REPLICA, str(where), url, str(i)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.monotonic() + 60
    while len(list(where.glob("ready-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    (where / "go").touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    return sorted(out.strip() for out, _ in outs)


@pytest.mark.parametrize("old", [None, "without-tags"])
def test_two_replicas_racing_on_postgresql_migrate_once(pg_url: str, old: str | None, tmp_path: Path) -> None:
    if old:
        previous_release(pg_url, tags=False)
    assert _race(pg_url, tmp_path) == sorted(["fresh" if old is None else "pre-alembic", "head"])  # one worked, one found it done
    assert versions(pg_url) == [HEAD]
    assert differences(pg_url) == []


def test_two_replicas_racing_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    assert _race(url, tmp_path) == ["fresh", "head"]
    assert versions(url) == [HEAD]


def test_start_up_waits_for_the_migration_lock_and_not_for_the_leader_lock(pg_url: str) -> None:
    from costwarden.agent.server.leader import LeaderLock

    holder = create_engine(pg_url)
    leader = LeaderLock(create_engine(pg_url))
    assert leader.try_acquire()  # another replica leads: that must not hold anyone's start-up
    lock = holder.connect()
    lock.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})  # another replica migrating
    lock.commit()
    done: list[str] = []
    t = threading.Thread(target=lambda: done.append(Store(pg_url).migration.path))
    t.start()
    time.sleep(1.0)
    assert t.is_alive() and not done and "alembic_version" not in tables(pg_url)  # waiting, nothing done
    lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
    lock.commit()
    t.join(30)
    assert done == ["fresh"]
    lock.close()
    leader.release()
    holder.dispose()
    leader.engine.dispose()


# --- the common case stays cheap --------------------------------------------------------------
def test_start_up_at_head_is_one_select_and_imports_no_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    Store(url).close()
    probe = (
        "import sys\n"
        "from sqlalchemy import event\n"
        "from sqlalchemy.engine import Engine\n"
        "seen = []\n"
        "event.listen(Engine, 'before_cursor_execute', lambda c, cur, stmt, *a: seen.append(stmt))\n"
        "from state.store import Store\n"
        f"s = Store({url!r})\n"
        "print(s.migration.path, 'alembic' in sys.modules, seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "head False ['SELECT version_num FROM alembic_version']"


# --- the CLI ----------------------------------------------------------------------------------
def test_cli_db_current_upgrade_history(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        no_costwarden_env: None) -> None:
    from costwarden.agent.cli.main import main

    state = tmp_path / "state"
    db = state / "costwarden.db"
    assert main(["db", "current", "--state-dir", str(state), "--check"]) == 1
    assert "no Costwarden tables yet" in capsys.readouterr().out and not db.exists()  # read-only
    state.mkdir()
    previous_release(f"sqlite:///{db}", tags=False)
    assert main(["db", "current", "--state-dir", str(state)]) == 0
    assert "tables from before migrations" in capsys.readouterr().out
    assert main(["db", "upgrade", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"pre-alembic: 0001 -> {HEAD}")
    assert main(["db", "current", "--state-dir", str(state), "--check"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{HEAD} (head)")
    assert main(["db", "upgrade", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"already at {HEAD} (head)")
    assert main(["db", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["<base> -> 0001", "0001 -> 0002", "0002 -> 0003",
                                                  f"0003 -> {HEAD} (head)"]
