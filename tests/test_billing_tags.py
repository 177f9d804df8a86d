"""Nothing hidden: Tags keys match whatever their case by default, and a top-N table ends with an
"other" row so it sums to its total."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from costwarden.agent.reports.spend import build_report
from costwarden.tools.billing.focus import FocusExport
from costwarden.tools.billing.settings import BillingSettings
from tests.focus_rows import focus_row, write_focus

DAY = date(2025, 5, 10)


def test_owner_and_Owner_are_one_team_unless_case_sensitive(tmp_path):
    rows = [focus_row(DAY, "Amazon EC2", 60, tags='{"Owner": "ml"}'),
            focus_row(DAY, "Amazon S3", 30, tags='{"team": "ml"}'),
            focus_row(DAY, "Amazon RDS", 10, tags='{"CostCenter": "cc-7"}')]
    path = write_focus(tmp_path / "t.csv", rows)
    tag_map = BillingSettings().tag_map
    fx = FocusExport([str(path)], tag_map=tag_map)
    assert {r.keys["team"]: r.cost for r in fx.spend_by(["team"])} == {"ml": Decimal(90), None: Decimal(10)}
    assert {r.keys["cost_center"]: r.cost for r in fx.spend_by(["cost_center"])}[("cc-7")] == Decimal(10)
    assert [r.cost for r in fx.daily_spend([], filters={"team": "ml"})] == [Decimal(90)]
    fx.close()
    strict = FocusExport([str(path)], tag_map={"team": ["owner"]}, tag_case_sensitive=True)
    assert {r.keys["team"]: r.cost for r in strict.spend_by(["team"])} == {None: Decimal(100)}
    strict.close()


def test_spend_by_service_ends_with_an_other_row(tmp_path):
    rows = [focus_row(DAY, f"Service {i:02d}", 100 + i) for i in range(24)]
    path = write_focus(tmp_path / "s.csv", rows)
    doc = build_report(BillingSettings(focus_paths=[str(path)]), datetime(2025, 5, 11, tzinfo=timezone.utc),
                       anomalies=False)
    table = doc["billing"]["by_service"]
    assert len(table) == 16 and table[-1]["service"] == "other (9)"
    assert table[-1]["cost"] == sum(100 + i for i in range(9))
    assert round(sum(r["cost"] for r in table), 2) == doc["billing"]["total"]["USD"]
