"""Numbers on data nobody here wrote: FOCUS 1.2 exports from `focus-data-toolkit` (AWS, Azure, GCP,
with credits, several seeds) through the real `costwarden audit` (spend-anomaly and budget
policies) and `costwarden report`, against sums made with `csv` and `Decimal` alone
(tests/third_party_exports.py).

Each export is either moved to end at today's midnight (the wall-clock windows) or left in May
2026 (`--as-of 2026-05-31`). Checked: exit codes as documented (audit: 1 exactly when
`errors` is not empty; report: 0), no traceback, report totals and spend by service equal the
exact sums in both cost columns, every sub-account budget's month-to-date equals the exact sum of
that sub-account's month, and the monthly waste of all findings stays below the monthly bill.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from costwarden.agent.cli.main import main
from tests.third_party_exports import Expected, shift_days_to_end_at, write_exports

ROWS = 10_000  # per seed, split over the three providers
CENT = Decimal("0.005") + Decimal("1e-9")  # the documents round to the cent
MAY_END = date(2026, 5, 31)

POLICIES = {"policies": [
    {"name": "billing-anomalies", "resource": "billing.focus", "mode": "report", "filters": [{"type": "spend-anomaly"}]},
    {"name": "budgets", "resource": "billing.budget", "mode": "report", "filters": [{"type": "budget"}]},
]}


def _config(tmp: Path, paths: list[Path], exp: Expected, cost_column: str) -> Path:
    subs = sorted({sub for sub, _day in exp.by_sub_account_day["BilledCost"]})
    # a one-cent budget per sub-account always fires, so its evidence carries the month-to-date spend
    budgets = [{"name": f"acct-{i}", "scope": "account", "value": sub, "monthly_usd": 0.01} for i, sub in enumerate(subs)]
    budgets.append({"name": "everything", "scope": "total", "monthly_usd": 0.01})
    cfg = tmp / f"costwarden-{cost_column}.yml"
    cfg.write_text(yaml.safe_dump({"billing": {"focus_paths": [str(p) for p in paths], "cost_column": cost_column,
                                               "usage_window_days": 62, "budgets": budgets}}))
    return cfg


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = main(list(args))  # an uncaught exception would fail the test here, traceback and all
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, json.loads(out), err


def _close(reported: float | None, exact: Decimal) -> bool:
    return reported is not None and abs(Decimal(str(reported)) - exact) <= CENT


def _check_report(doc: dict, exp: Expected, col: str) -> None:
    billing = doc["billing"]
    assert doc["cost_column"] == col and billing["rows"] == exp.rows
    assert set(billing["total"]) == exp.currencies == {"USD"}
    total = exp.total[col]
    assert _close(billing["total"]["USD"], total), (billing["total"], total)
    rows = billing["by_service"]
    named = [r for r in rows if r["provider"] is not None]
    for r in named:
        assert _close(r["cost"], exp.by_service[col][(r["provider"], r["service"])]), r
    others = [r for r in rows if r["provider"] is None]
    shown = sum((exp.by_service[col][(r["provider"], r["service"])] for r in named), Decimal(0))
    hidden = len(exp.by_service[col]) - len(named)
    if hidden:  # nothing hidden: the rest is one "other (N)" row
        assert [r["service"] for r in others] == [f"other ({hidden})"]
        assert _close(others[0]["cost"], total - shown)
    else:
        assert not others
    assert abs(sum(Decimal(str(r["cost"])) for r in rows) - total) <= CENT * len(rows)


def _check_audit(code: int, doc: dict, exp: Expected, col: str, month: tuple[date, date]) -> None:
    assert code == (1 if doc["errors"] else 0) and not doc["errors"], doc["errors"]
    budgets = {f["evidence"]["value"]: f["evidence"] for f in doc["findings"]
               if f["detector"] == "budget" and f["evidence"]["scope"] == "account"}
    exact = exp.sub_account_spend(col, *month)
    assert set(budgets) == set(exact)
    for sub, ev in budgets.items():
        assert _close(ev["month_to_date_usd"], exact[sub]), (sub, ev["month_to_date_usd"], exact[sub])
        # the export covers the budget month from its 1st: nothing estimated
        assert ev["data_start"] == exp.first_start.date().isoformat() and ev["unseen_days_estimated"] == 0
    everything = [f["evidence"] for f in doc["findings"] if f["detector"] == "budget" and f["evidence"]["scope"] == "total"]
    assert len(everything) == 1 and _close(everything[0]["month_to_date_usd"], sum(exact.values(), Decimal(0)))
    # the monthly bill: the export is one month (31 days) of spend; waste is per month of 730 hours
    bill = exp.total[col] * Decimal(730) / Decimal(24 * 31)
    waste = sum((Decimal(str(f["monthly_waste_usd"])) for f in doc["findings"]), Decimal(0))
    assert Decimal(str(doc["totals"]["monthly_waste_usd"])) == waste
    assert 0 <= waste < bill, (waste, bill)
    anomalies = [f for f in doc["findings"] if f["detector"] == "spend-anomaly"]
    assert len({f["id"] for f in anomalies}) == len(anomalies)


def _run(name: str, now: datetime) -> tuple[int, list[str], tuple[date, date]]:
    """(shift in days, --as-of, the budget month's days that count) of a run."""
    if name == "recent":  # the export ends at today's midnight: the wall-clock windows
        return shift_days_to_end_at(now), [], (now.date().replace(day=1), now.date())
    return 0, ["--as-of", MAY_END.isoformat()], (MAY_END.replace(day=1), MAY_END)  # May 2026, judged whole


@pytest.mark.parametrize(("seed", "name"), [(7, "recent"), (7, "may-2026"), (1, "recent"), (42, "may-2026")])
def test_third_party_exports_total_to_the_cent(seed, name, tmp_path, monkeypatch, capsys, no_costwarden_env):
    monkeypatch.chdir(tmp_path)
    now = datetime.now(timezone.utc)
    shift, as_of, month = _run(name, now)
    paths = write_exports(tmp_path / "exports", ROWS, seed, shift_days=shift)
    exp = Expected.of(paths)
    assert exp.rows == ROWS and exp.last_end is not None
    assert exp.last_end.date() == (now.date() if name == "recent" else date(2026, 6, 1))
    audit_col = "EffectiveCost" if seed % 2 else "BilledCost"
    for col in ("EffectiveCost", "BilledCost"):
        cfg = _config(tmp_path, paths, exp, col)
        code, doc, _err = _cli(capsys, "report", "-c", str(cfg), "-f", "json", *as_of)
        assert code == 0
        assert not [w for w in doc["warnings"] if "export ends" in w]  # the window holds the data
        _check_report(doc, exp, col)
        if col == audit_col:
            pfile = tmp_path / "policies.yml"
            pfile.write_text(yaml.safe_dump(POLICIES))
            code, doc, _err = _cli(capsys, "audit", "-c", str(cfg), "-p", str(pfile), "-f", "json", "-q",
                                   "--state-dir", str(tmp_path / "state"), *as_of)
            _check_audit(code, doc, exp, col, month)


def test_an_old_third_party_export_is_reported_up_to_its_last_day(tmp_path, monkeypatch, capsys, no_costwarden_env):
    """May 2026 read in October: the window follows the data (with a warning), never an empty total."""
    monkeypatch.chdir(tmp_path)
    paths = write_exports(tmp_path / "exports", 3_000, 3)
    exp = Expected.of(paths)
    cfg = _config(tmp_path, paths, exp, "EffectiveCost")
    code, doc, _err = _cli(capsys, "report", "-c", str(cfg), "-f", "json", "--as-of", "2026-09-30")
    assert code == 0 and any("the export ends on 2026-05-31" in w for w in doc["warnings"])
    _check_report(doc, exp, "EffectiveCost")
