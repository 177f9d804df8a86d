"""The usage rollup's store: kept in <state_dir>/usage.duckdb by default, read once per sweep by every
policy, let go between sweeps, and never silently replaced by memory when another process holds it.

DuckDB lets one process open a database file at a time (not even a read-only second process may
open it while a writer has it), so the daemon holds the store only during a sweep and a CLI run
beside it waits; these tests hold the file from a real second process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from costwarden.agent.config import Settings, load_settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.litellm_db import LiteLLMDatabase
from costwarden.tools.llm.rollup import UsageRollup
from tests.test_litellm_db import NOW, requests, write

POLICIES = """
policies:
  - name: features-a
    resource: llm.feature
    mode: report
    filters: [{type: spend-anomaly}]
  - name: features-b
    resource: llm.feature
    mode: report
    filters: [{type: cache-opportunity}]
  - name: tiers
    resource: llm.tier
    mode: report
    filters: [{type: negative-margin, by: tier}]
"""

_HOLD = ("import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(float(sys.argv[2]))")


def _hold(store: Path, seconds: float) -> subprocess.Popen[str]:
    """A second process holding the store open for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(store), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _requests_in_store(store: Path) -> int:
    """What another process reads from the store file (it can only when this process let go of it)."""
    code = ("import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print(c.execute('SELECT SUM(requests) FROM cells').fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_config_keeps_usage_in_the_state_dir_by_default(tmp_path, no_costwarden_env):
    cfg = tmp_path / "costwarden.yml"
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nbilling:\n  usage_paths: [{tmp_path / 'spans.jsonl'}]\n")
    assert load_settings(cfg).billing.usage_store == str(tmp_path / "state" / "usage.duckdb")
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\nbilling:\n  usage_paths: [{tmp_path / 'spans.jsonl'}]\n"
                   f"  usage_store: {tmp_path / 'elsewhere.duckdb'}\n")
    assert load_settings(cfg).billing.usage_store == str(tmp_path / "elsewhere.duckdb")
    cfg.write_text(f"state_dir: {tmp_path / 'state'}\n")
    assert load_settings(cfg).billing.usage_store is None  # no usage configured: no store either


def test_one_sweep_reads_litellm_once_for_every_policy_and_lets_go_of_the_store(tmp_path, monkeypatch,
                                                                                 no_costwarden_env):
    url = f"sqlite:///{tmp_path / 'litellm.db'}"
    rows = requests(200, seed=3)
    write(url, rows, daily=False)
    reads: list[object] = []
    real_read = LiteLLMDatabase.read

    def counted(self: LiteLLMDatabase, since: object) -> object:
        reads.append(since)
        return real_read(self, since)  # type: ignore[arg-type]

    monkeypatch.setattr(LiteLLMDatabase, "read", counted)
    store = tmp_path / "state" / "usage.duckdb"
    billing = BillingSettings(litellm_database_url=url, litellm_database_source="spend_logs", usage_store=str(store))
    settings = Settings(state_dir=tmp_path / "state", billing=billing)
    policy = tmp_path / "llm.yml"
    policy.write_text(POLICIES)
    result = run_sweep(settings, load_policy_file(policy), dry_run=True, now=NOW)
    assert not [e for e in result.errors if "llm usage" in e], result.errors
    assert len(reads) == 1  # three policies, one read of LiteLLM's database
    # the sweep is over: another process (a CLI run) can open the store, and the usage is in it
    assert _requests_in_store(store) == len(rows)
    run_sweep(settings, load_policy_file(policy), dry_run=True, now=NOW)
    assert len(reads) == 2 and reads[1] is not None  # the next sweep resumes from the watermark
    assert _requests_in_store(store) == len(rows)  # ... and counts nothing twice


def test_a_store_another_process_holds_is_an_error_not_memory(tmp_path):
    store = tmp_path / "usage.duckdb"
    UsageRollup(str(store)).close()
    holder = _hold(store, 60)
    try:
        t = time.monotonic()
        with pytest.raises(BillingInputError, match=r"usage.duckdb: held by another process for more than 0.5 s"):
            UsageRollup(str(store), wait_s=0.5)
        assert time.monotonic() - t >= 0.5
    finally:
        holder.kill()
        holder.wait()


def test_a_store_is_waited_for_while_another_process_finishes_its_sweep(tmp_path):
    store = tmp_path / "usage.duckdb"
    holder = _hold(store, 1.0)
    try:
        rollup = UsageRollup(str(store), wait_s=30)
        assert rollup.query("SELECT COUNT(*) FROM cells") == [(0,)]
        rollup.release()
    finally:
        holder.wait()


def test_released_store_reopens_on_use_with_its_rows(tmp_path):
    spans = tmp_path / "spans.jsonl"
    spans.write_text("".join(json.dumps({
        "spanId": f"{i:016x}", "timestamp": f"2025-12-01T10:{i:02d}:00Z",
        "attributes": {"gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10}}) + "\n"
        for i in range(30)))
    store = tmp_path / "usage.duckdb"
    rollup = UsageRollup(str(store))
    rollup.sync([str(spans)])
    rollup.release()
    assert _requests_in_store(store) == 30  # let go: another process reads it
    rollup.sync([str(spans)])  # reopened; nothing new
    assert rollup.query("SELECT SUM(requests) FROM cells") == [(30,)]
    rollup.close()


def test_the_rollup_keeps_its_retention_behind_the_newest_hour_and_span_ids_for_the_dedup_window(tmp_path) -> None:
    """A daemon's store must not grow with every span it ever read: hours older than the retention
    (behind the newest hour held) are dropped after a read, span ids after DEDUP_DAYS, and a span
    retried within the window still counts once."""
    import json
    from datetime import datetime, timedelta, timezone

    from costwarden.tools.llm.rollup import DEDUP_DAYS, UsageRollup

    def span(i: int, at: datetime) -> str:
        ns = int(at.timestamp() * 1e9)
        return json.dumps({"traceId": "t", "spanId": f"{i:016x}", "startTimeUnixNano": str(ns), "attributes": {
            "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 10, "costwarden.tenant": f"u{i}"}}) + "\n"

    new = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    ages = {1: 500, 2: 100, 3: 10, 4: 0}  # days before the newest span
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(span(i, new - timedelta(days=d)) for i, d in ages.items()))
    rollup = UsageRollup(str(tmp_path / "usage.duckdb"), retention_days=400)
    rollup.sync([str(path)])
    assert rollup.query("SELECT SUM(requests) FROM cells")[0][0] == 3  # the 500-day-old hour is gone
    assert rollup.query("SELECT COUNT(*) FROM tenants")[0][0] == 3
    assert rollup.query("SELECT COUNT(*) FROM seen")[0][0] == sum(d <= DEDUP_DAYS for d in ages.values()) == 2
    with path.open("a") as fh:  # a sender retries the 10-day-old span: still counted once
        fh.write(span(3, new - timedelta(days=10)))
    rollup.sync([str(path)])
    assert rollup.query("SELECT SUM(requests) FROM cells")[0][0] == 3


def test_a_retention_shorter_than_the_history_read_back_is_one_line() -> None:
    import pytest
    from pydantic import ValidationError

    from costwarden.tools.billing.settings import BillingSettings

    with pytest.raises(ValidationError, match="usage_retention_days \\(60\\) is shorter than the 90 days"):
        BillingSettings(usage_retention_days=60, lookback_days=90)
