"""Finding ids of billing series: every dimension of the series is in the id, and a duplicate id is an
error line from the store, never an IntegrityError that ends the sweep."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from costwarden.agent.config import Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies
from costwarden.state.domain import Finding
from costwarden.state.store import Store
from costwarden.tools.billing.settings import BillingSettings
from tests.focus_rows import focus_row, write_focus

NOW = datetime(2025, 3, 20, 9, tzinfo=timezone.utc)


def _spiky(billing_account: str) -> list[dict[str, str]]:
    """Steady $500/day for four weeks, then $9,000 yesterday, in one sub-account under `billing_account`."""
    days = [date(2025, 3, 19) - timedelta(days=i) for i in range(29)]
    return [focus_row(d, "Amazon EC2", 9000 if d == date(2025, 3, 19) else 500 + (d.day % 3),
                      billing_account=billing_account, sub_account="111122223333") for d in days]


def test_one_sub_account_under_two_billing_accounts_gives_two_findings(tmp_path, no_costwarden_env):
    path = write_focus(tmp_path / "focus.csv", _spiky("900000000001") + _spiky("900000000002"))
    settings = Settings(state_dir=tmp_path / "state", billing=BillingSettings(focus_paths=[str(path)]))
    policies = [lp for lp in load_policies([]) if lp.policy.resource == "billing.focus"]
    result = run_sweep(settings, policies, dry_run=True, now=NOW)
    assert result.errors == []
    anomalies = [f for f in result.findings if f.detector == "spend-anomaly"]
    assert sorted(f.resource_id for f in anomalies) == ["AWS/Amazon EC2 @900000000001", "AWS/Amazon EC2 @900000000002"]
    assert len({f.id for f in anomalies}) == 2 and len({f.fingerprint for f in anomalies}) == 2


def test_a_duplicate_finding_id_is_an_error_line_not_a_crash(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.start_run("r1", dry_run=True, policies=["p"], trigger="test")
    f = Finding("fnd_1", "p", "spend-anomaly", "focus", "1", "global", "AWS/EC2", "billing.focus", {}, Decimal(5), "low")
    assert store.add_findings("r1", [f, f]) == ["finding fnd_1 (spend-anomaly on AWS/EC2): duplicate id, not stored"]
    assert store.add_findings("r1", [f]) != []  # already stored by an earlier call
    assert [row.id for row in store.findings_for_run("r1")] == ["fnd_1"]
    store.close()
