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
    monkeypatch.setattr(collect_mod, "open_export", lambda billing, now=None: fx)
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
