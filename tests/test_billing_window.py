"""The window follows the data: an export older than the wall-clock window is analysed up to its last
complete day with a warning, never reported as an empty total; `--as-of DATE` picks any closed period."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta, timezone

import yaml

from costwarden.agent.cli.main import main
from costwarden.agent.config import Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies
from costwarden.tools.billing.settings import BillingSettings
from tests.focus_rows import focus_row, write_focus

LAST = date(2025, 1, 31)  # the export's last day; the wall clock is months later


def _old_export(tmp_path):
    rows = [focus_row(LAST - timedelta(days=i), "Amazon EC2", 4000 if i == 0 else 500 + i % 3) for i in range(40)]
    return write_focus(tmp_path / "old.csv", rows)


def _clean(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("COSTWARDEN_")]:
        monkeypatch.delenv(k)


def test_an_old_export_is_analysed_up_to_its_last_day_with_a_warning(tmp_path, no_costwarden_env):
    settings = Settings(state_dir=tmp_path / "state", billing=BillingSettings(focus_paths=[str(_old_export(tmp_path))]))
    policies = [lp for lp in load_policies([]) if lp.policy.resource == "billing.focus"]
    result = run_sweep(settings, policies, dry_run=True, now=datetime(2025, 6, 1, 9, tzinfo=timezone.utc))
    assert any("the export ends on 2025-01-31" in w for w in result.warnings)
    spike = [f for f in result.findings if f.detector == "spend-anomaly"]
    assert [f.evidence["day"] for f in spike] == ["2025-01-31"]


def test_report_as_of_a_closed_period_and_the_default_follows_the_data(tmp_path, monkeypatch, capsys):
    _clean(monkeypatch, tmp_path)
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"billing": {"focus_paths": [str(_old_export(tmp_path))]}}))
    assert main(["report", "-c", str(cfg), "-f", "json", "--as-of", "2025-01-15"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["window"]["end"] == "2025-01-16T00:00:00" and not any("export ends" in w for w in doc["warnings"])
    assert doc["billing"]["total"]["USD"] > 0
    assert main(["report", "-c", str(cfg), "-f", "json"]) == 0  # the wall clock: months after the export
    doc = json.loads(capsys.readouterr().out)
    assert doc["window"]["end"] == "2025-02-01T00:00:00" and any("export ends on 2025-01-31" in w for w in doc["warnings"])
    assert doc["billing"]["total"]["USD"] > 0
    assert main(["report", "-c", str(cfg), "--as-of", "January"]) == 2
    assert "--as-of" in capsys.readouterr().err


def test_strict_inputs_bad_amounts_in_either_cost_column_empty_and_header_only_files(tmp_path):
    import pytest

    from costwarden.tools.billing.focus import BillingInputError, FocusExport

    good = [focus_row(LAST - timedelta(days=i), "Amazon EC2", 10) for i in range(3)]
    for bad in ("n/a", "1,234.50"):
        path = write_focus(tmp_path / "bad.csv", good + [focus_row(LAST, "Amazon S3", 5, billed=bad)])
        for col in ("EffectiveCost", "BilledCost"):  # BilledCost is checked even when EffectiveCost is reported
            fx = FocusExport([str(path)], cost_column=col)
            with pytest.raises(BillingInputError, match=rf"bad.csv: column 'BilledCost', data row 4: cannot read "
                                                         rf"'{bad}' as a decimal amount"):
                fx.total()
            fx.close()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BillingInputError, match=r"empty.csv: empty file \(0 bytes\)"):
        FocusExport([str(empty)])
    header = write_focus(tmp_path / "header.csv", [])
    fx = FocusExport([str(header)])
    assert fx.warnings == [f"{header}: header only, no rows"] and fx.total() == {}
    fx.close()


def test_report_cli_bad_amount_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    _clean(monkeypatch, tmp_path)
    path = write_focus(tmp_path / "bad.csv", [focus_row(LAST, "Amazon S3", 5, billed="n/a")])
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"billing": {"focus_paths": [str(path)]}}))
    assert main(["report", "-c", str(cfg), "--as-of", "2025-01-31"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv: column 'BilledCost', data row 1" in err
