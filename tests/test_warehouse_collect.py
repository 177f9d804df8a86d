"""The billing collectors with `billing.warehouse` set: the daily series and budgets they observe
equal those of the local path on the same rows, the bytes scanned are reported, and a refused query
is an error, never a $0 series."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from costwarden.agent.demo.billing import write_demo_billing
from costwarden.tools.billing import collect as collect_mod
from costwarden.tools.billing.collect import collect_budgets, collect_focus
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.billing.warehouse import export as export_mod
from costwarden.tools.collectors import CollectPlan, CollectReport, Scope
from tests.warehouse_duckdb import TABLES, DuckDBRunner, warehouse_con

NOW = datetime(2026, 3, 5, 7, tzinfo=timezone.utc)


def _plan() -> CollectPlan:
    return CollectPlan(wants=lambda _r: True, metrics=[], lookback_hours=0, now=NOW)


def _series(obs) -> dict:
    return {o.resource.resource_id: [(t, round(v, 2)) for t, v in o.series["cost_usd"].points] for o in obs}


@pytest.mark.parametrize("dialect", ["athena", "bigquery"])
def test_collectors_observe_the_same_series_from_the_warehouse(tmp_path, monkeypatch, dialect: str) -> None:
    cfg = write_demo_billing(tmp_path, NOW)
    con = warehouse_con(cfg["focus_paths"][0])
    monkeypatch.setattr(export_mod, "open_runner", lambda s: DuckDBRunner(con, dialect))
    local = BillingSettings(**{k: v for k, v in cfg.items() if k != "usage_paths"})
    part = {"athena": {}, "bigquery": {"partition_column": "_PARTITIONTIME", "partition_format": "timestamp"}}
    wh = BillingSettings(**{k: v for k, v in cfg.items() if k not in ("usage_paths", "focus_paths")},
                         warehouse={"kind": dialect, "table": TABLES[dialect], "project": "proj", **part[dialect]})
    r_local, r_wh = CollectReport(), CollectReport()
    want = _series(collect_focus(local, Scope(regions=[]), _plan(), r_local))
    got = _series(collect_focus(wh, Scope(regions=[]), _plan(), r_wh))
    assert want and got == want
    assert not r_wh.errors and any("queries scanned" in w for w in r_wh.warnings)
    b_local, b_wh = CollectReport(), CollectReport()
    budgets = [b for b in local.budgets if b.source == "focus"]
    assert budgets
    want_b = _series(o for o in collect_budgets(local, Scope(regions=[]), _plan(), b_local) if o.resource.attrs["source"] == "focus")
    got_b = _series(o for o in collect_budgets(wh, Scope(regions=[]), _plan(), b_wh) if o.resource.attrs["source"] == "focus")
    assert want_b and got_b == want_b


def test_a_capped_warehouse_is_an_error_not_a_zero_series(tmp_path, monkeypatch) -> None:
    cfg = write_demo_billing(tmp_path, NOW)
    runner = DuckDBRunner(warehouse_con(cfg["focus_paths"][0]), "athena")
    wh = BillingSettings(warehouse={"kind": "athena", "table": "cur.focus", "max_bytes_scanned": 1})
    fx = export_mod.WarehouseExport(wh.warehouse, runner=runner)
    fx.ledger.add("earlier", 6)  # the allowance is used up by earlier queries of the sweep
    monkeypatch.setattr(collect_mod, "open_export", lambda *a: fx)
    report = CollectReport()
    assert list(collect_focus(wh, Scope(regions=[]), _plan(), report)) == []
    assert len(report.errors) == 1 and "max_bytes_scanned" in report.errors[0]
    assert any("1 queries scanned 6 bytes" in w for w in report.warnings)


def test_files_and_warehouse_together_are_refused() -> None:
    with pytest.raises(ValueError, match="focus_paths or warehouse, not both"):
        BillingSettings(focus_paths=["x.csv"], warehouse={"kind": "athena", "table": "cur.focus"})


@pytest.mark.parametrize("dialect", ["athena", "bigquery"])
def test_spend_report_tables_are_the_same_from_the_warehouse(tmp_path, monkeypatch, dialect: str) -> None:
    from costwarden.agent.reports.spend import build_report

    cfg = write_demo_billing(tmp_path, NOW)
    con = warehouse_con(cfg["focus_paths"][0])
    monkeypatch.setattr(export_mod, "open_runner", lambda s: DuckDBRunner(con, dialect))
    base = {k: v for k, v in cfg.items() if k not in ("usage_paths", "focus_paths", "budgets")}
    local = build_report(BillingSettings(**base, focus_paths=cfg["focus_paths"]), NOW, anomalies=False)
    wh = build_report(BillingSettings(**base, warehouse={"kind": dialect, "table": TABLES[dialect], "project": "proj"}),
                      NOW, anomalies=False)
    for key in ("total", "by_service", "by_team", "unused_commitments"):
        assert wh["billing"][key] == local["billing"][key], key
    assert local["billing"]["total"]["USD"] > 0 and local["billing"]["by_team"]
    assert wh["billing"]["rows"] is None  # not counted in the warehouse (a scan of its own), never 0
    assert any("queries scanned" in w for w in wh["warnings"])


def test_one_allowance_for_the_whole_sweep(tmp_path, monkeypatch) -> None:
    """The anomaly and budget collectors of one sweep draw on the same allowance (the sweep's
    Providers hold the ledger): the second collector is refused once the first used it up."""
    from costwarden.agent.config import Settings
    from costwarden.agent.engine.context import Providers
    from costwarden.tools.collectors import get_collector

    source = get_collector("billing.focus").source  # what the sweep's collect node calls

    cfg = write_demo_billing(tmp_path, NOW)
    con = warehouse_con(cfg["focus_paths"][0])
    runner = DuckDBRunner(con, "athena")
    orig = runner.run

    def run(name, sql, ledger):
        rows = orig(name, sql, ledger)
        ledger.add(name, 100)  # each query scans 100 bytes
        return rows

    runner.run = run  # type: ignore[method-assign]
    monkeypatch.setattr(export_mod, "open_runner", lambda s: runner)
    settings = Settings(billing={**{k: v for k, v in cfg.items() if k not in ("usage_paths", "focus_paths")},
                                 "warehouse": {"kind": "athena", "table": "cur.focus", "max_bytes_scanned": 100}})
    providers = Providers(settings, dry_run=True)
    inputs = source(settings, providers)
    assert inputs.ledger is providers.warehouse_ledger is not None
    r1, r2 = CollectReport(), CollectReport()
    assert list(collect_focus(inputs, Scope(regions=[]), _plan(), r1))  # 100 of 100 bytes
    assert not r1.errors
    assert list(o for o in collect_budgets(source(settings, providers), Scope(regions=[]), _plan(), r2)
                if o.resource.attrs["source"] == "focus") == []
    bill = [e for e in r2.errors if "usage_paths" not in e]  # the token-usage budget has no source here
    assert len(bill) == 2 and all("max_bytes_scanned" in e for e in bill)
