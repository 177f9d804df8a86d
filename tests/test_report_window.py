"""`costwarden report --since DATE`: a window of the store over many runs, findings counted once,
executed actions with projected vs realized savings; and the weekly Slack digest."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.agent.cli.main import main
from costwarden.agent.config import load_settings
from costwarden.agent.reports.digest import digest_from_result, digest_from_store, post_digest
from costwarden.state.domain import Finding, PlannedAction
from costwarden.state.models import ActionRow, FindingRow, Run
from costwarden.state.store import Store
from tests.fakes.slack import FakeSlack
from tests.sample_results import sweep_result
from costwarden.tools.slack import SlackNotifier

NOW = datetime.now(timezone.utc)


def _finding(run: str, waste: str, resource: str = "i-1", detector: str = "idle-gpu") -> Finding:
    return Finding(id=f"fnd_{run}_{resource}", policy="idle", detector=detector, provider="aws", account="1",
                   region="us-east-1", resource_id=resource, resource_type="aws.ec2", evidence={"hourly_price_usd": 21.96},
                   monthly_waste_usd=Decimal(waste), severity="critical", rationale=f"{resource} idle")


def _seed(store: Store) -> None:
    """An old run (outside the window), two runs inside it finding the same GPU, one action executed."""
    for run, age, waste in (("old", 20, "999"), ("r1", 2, "16030.80"), ("r2", 1, "16030.80")):
        store.start_run(run, dry_run=run != "r1", policies=["idle"], trigger="test")
        store.add_findings(run, [_finding(run, waste)] + ([_finding(run, "884.76", "i-2")] if run == "r2" else []))
        store.finish_run(run, status="done", errors=[], monthly_waste=Decimal(waste), projected_savings=Decimal(0))
        with store.session() as s:
            s.get(Run, run).started_at = NOW - timedelta(days=age)
            for f in s.query(FindingRow).filter(FindingRow.run_id == run):
                f.created_at = NOW - timedelta(days=age)
    store.add_action("r1", PlannedAction(id="act_1", finding_id="fnd_r1_i-1", policy="idle", action="stop",
                                         tool="aws.ec2.stop_instance", args={}, projected_monthly_savings_usd=Decimal("16030.80"),
                                         resource_key="aws:1:us-east-1:i-1", decision="auto", status="planned"),
                     policy_hash="h")
    with store.session() as s:  # executed two days ago (rows of the past, written as they would stand now)
        s.get(ActionRow, "act_1").created_at = NOW - timedelta(days=2)
        s.get(ActionRow, "act_1").status = "done"
    store.save_realized("act_1", method="state", hourly_usd=Decimal("21.96"), acted_at=NOW - timedelta(days=2),
                        observed_until=NOW, held=True, hours_observed=Decimal(48), hours_held=Decimal(48),
                        realized_usd=Decimal("1054.08"), realized_monthly_usd=Decimal("16030.80"))


def test_report_since_covers_the_window_of_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     no_costwarden_env: None) -> None:
    state = tmp_path / "state"
    store = Store(load_settings(None, state_dir=state).db_url)
    _seed(store)
    since = (NOW - timedelta(days=7)).date().isoformat()
    assert main(["report", "--since", since, "--state-dir", str(state), "-f", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)["store"]
    assert doc["runs"]["total"] == 2 and doc["runs"]["live"] == 1  # the 20-day-old run is outside
    # the same idle GPU in two runs is one finding; the window's waste is not the sum of its sweeps
    assert (doc["findings"]["rows"], doc["findings"]["distinct"]) == (3, 2)
    assert doc["findings"]["monthly_waste_usd"] == 16915.56
    assert doc["savings"] == [{"action_id": "act_1", "resource": "aws:1:us-east-1:i-1", "action": "stop",
                               "acted_at": doc["savings"][0]["acted_at"], "projected_monthly_usd": 16030.8,
                               "realized_monthly_usd": 16030.8, "realized_usd": 1054.08, "hours_held": 48.0,
                               "billing_monthly_usd": None}]
    assert doc["totals"] == {"projected_monthly_usd": 16030.8, "realized_monthly_usd": 16030.8,
                             "realized_to_date_usd": 1054.08}
    assert main(["report", "--since", since, "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "Executed actions: projected vs realized" in out and "1,054.08 USD saved so far" in out
    # a recent window sees only the latest run
    assert main(["report", "--since", (NOW - timedelta(hours=30)).isoformat(), "--state-dir", str(state),
                 "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["store"]["runs"]["total"] == 1


def test_report_since_rejects_a_bad_date(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        no_costwarden_env: None) -> None:
    assert main(["report", "--since", "last tuesday", "--state-dir", str(tmp_path)]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["report", "--measure", "--state-dir", str(tmp_path)]) == 2


def test_weekly_digest_posts_headline_and_top_findings_per_team() -> None:
    fake = FakeSlack()
    try:
        notifier = SlackNotifier(fake.token, base_url=fake.base_url)
        digest = digest_from_result(sweep_result(), since=NOW - timedelta(days=7), now=NOW)
        posted = post_digest(notifier, digest, channel="#finops",
                             team_channels={"research": "#research", "search": "#search", "web": "#web"})
        assert len(posted) == 3  # the whole digest, then research and search; web has no finding
        calls = [args for method, args in fake.calls if method == "chat.postMessage"]
        assert [c["channel"] for c in calls] == ["#finops", "#research", "#search"]
        assert "$17,025.37/month of waste in 3 findings" in calls[0]["text"]
        whole = json.dumps(calls[0]["blocks"])
        assert "Projected savings" in whole and "$16,030.80/month" in whole and "needs_approval 1, skip 1" in whole
        assert whole.index("gpu-a") < whole.index("i-2") < whole.index("i-3")  # top findings, largest first
        research = json.dumps(calls[1]["blocks"])
        assert "gpu-a" in research and "i-2" not in research and "$16,030.80" in calls[1]["text"]
    finally:
        fake.stop()


def test_digest_from_store_counts_each_finding_once(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _seed(store)
    d = digest_from_store(store, since=NOW - timedelta(days=7), now=NOW)
    assert sorted(f["monthly_waste_usd"] for f in d["findings"]) == [884.76, 16030.8]
    assert d["realized_monthly_usd"] == 16030.8 and d["actions_by_decision"] == {"auto": 1}
