"""The weekly digest per team: findings keep their resource's tags in the store, each team's share
goes to its own channel (real slack-sdk against the fake Slack), and a database made before the
findings table had a tags column keeps working."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.agent.config import ConfigError, Settings, SlackSettings, load_settings
from costwarden.agent.reports.digest import digest_from_store, post_digest, team_of, team_tag_keys
from costwarden.state.domain import Finding
from costwarden.state.store import Store
from tests.fakes.slack import FakeSlack
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.slack import SlackNotifier

NOW = datetime.now(timezone.utc)
TOKEN = "xoxb-digest-0000"


def finding(resource: str, waste: str, tags: dict[str, str] | None = None) -> Finding:
    return Finding(id=f"fnd_{resource}", policy="idle", detector="idle-gpu", provider="aws", account="1",
                   region="us-east-1", resource_id=resource, resource_type="aws.ec2", evidence={},
                   monthly_waste_usd=Decimal(waste), severity="high", rationale=f"{resource} is idle",
                   tags=tags or {})


def seed(store: Store, findings: list[Finding], run: str = "r1") -> None:
    store.start_run(run, dry_run=True, policies=["idle"], trigger="test")
    store.add_findings(run, findings)
    store.finish_run(run, status="done", errors=[], monthly_waste=sum((f.monthly_waste_usd for f in findings),
                                                                     Decimal(0)), projected_savings=Decimal(0))


ESTATE = [
    finding("i-gpu-a", "16030.80", {"team": "research", "Name": "llm-finetune-01"}),
    finding("i-gpu-b", "884.76", {"owner": "search"}),  # no `team` tag: the next key names the team
    finding("i-gpu-c", "2681.57", {"team": "research", "owner": "someone-else"}),  # `team` wins over `owner`
    finding("i-gpu-d", "500.00", {"team": "web"}),  # a team with no channel: default channel only
    finding("i-gpu-e", "99.00"),  # untagged: default channel only
]


@pytest.fixture
def slack():
    fake = FakeSlack(TOKEN)
    yield fake
    fake.stop()


def posts(fake: FakeSlack) -> dict[str, str]:
    """channel -> the blocks posted there, as one JSON string."""
    return {a["channel"]: json.dumps(a["blocks"]) for m, a in fake.calls if m == "chat.postMessage"}


def test_each_team_gets_its_own_findings_in_its_own_channel(tmp_path: Path, slack: FakeSlack) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, ESTATE)
    assert store.get_finding("fnd_i-gpu-b").tags == {"owner": "search"}
    digest = digest_from_store(store, since=NOW - timedelta(days=7), now=NOW)
    posted = post_digest(SlackNotifier(TOKEN, base_url=slack.base_url), digest, channel="#finops",
                         team_channels={"research": "#research", "search": "#search", "infra": "#infra"})
    assert len(posted) == 3
    sent = posts(slack)
    assert sorted(sent) == ["#finops", "#research", "#search"]  # infra has no finding: no message
    for name in ("llm-finetune-01", "i-gpu-b", "i-gpu-c", "i-gpu-d", "i-gpu-e"):
        assert name in sent["#finops"]
    assert "llm-finetune-01" in sent["#research"] and "i-gpu-c" in sent["#research"]
    assert all(n not in sent["#research"] for n in ("i-gpu-b", "i-gpu-d", "i-gpu-e"))
    assert "i-gpu-b" in sent["#search"] and all(n not in sent["#search"] for n in ("llm-finetune-01", "i-gpu-c"))
    texts = {a["channel"]: a["text"] for m, a in slack.calls if m == "chat.postMessage"}
    assert "for team research" in texts["#research"] and "$18,712.37/month of waste in 2 findings" in texts["#research"]
    assert "$20,196.13/month of waste in 5 findings" in texts["#finops"]


def test_the_team_tag_keys_follow_billing_tag_map(tmp_path: Path, slack: FakeSlack) -> None:
    keys = team_tag_keys(BillingSettings(tag_map={"team": ["squad"]}).tag_map)
    assert keys == ["squad"] and team_tag_keys(BillingSettings().tag_map) == ["team", "Team", "owner", "Owner"]
    assert team_tag_keys({"feature": ["app"]}) == ["team", "owner"]  # no team entry: the defaults
    assert team_of({"squad": "ml", "team": "x"}, keys) == "ml" and team_of({"team": "x"}, keys) is None
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, [finding("i-1", "10", {"squad": "ml"}), finding("i-2", "20", {"team": "ml"})])
    digest = digest_from_store(store, since=NOW - timedelta(days=7), now=NOW, tag_keys=keys)
    post_digest(SlackNotifier(TOKEN, base_url=slack.base_url), digest, channel="#finops", team_channels={"ml": "#ml"})
    sent = posts(slack)
    assert "i-1" in sent["#ml"] and "i-2" not in sent["#ml"]


def test_a_database_from_before_the_tags_column_keeps_working(tmp_path: Path, slack: FakeSlack) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    Store(url).close()
    with sqlite3.connect(tmp_path / "old.sqlite") as db:  # make it what the previous release created
        db.execute("ALTER TABLE findings DROP COLUMN tags")
        db.execute("ALTER TABLE runs DROP COLUMN api_calls")  # added by 0003, later still
        db.execute("DROP TABLE run_parts")  # added by 0004
        db.execute("DROP TABLE alembic_version")  # that release had no migrations
        db.execute("INSERT INTO runs (id, started_at, status, dry_run, \"trigger\", policies, errors, monthly_waste_usd, "
                   "projected_monthly_savings_usd) VALUES ('old', ?, 'done', 1, 'test', '[]', '[]', 5, 0)",
                   (NOW.isoformat(),))
        db.execute("INSERT INTO findings (id, run_id, fingerprint, policy, detector, provider, account, region, "
                   "resource_id, resource_type, evidence, monthly_waste_usd, severity, confidence, rationale, created_at) "
                   "VALUES ('fnd_old', 'old', 'fp-old', 'idle', 'idle-gpu', 'aws', '1', 'us-east-1', 'i-old', 'aws.ec2', "
                   "'{}', 5, 'low', 'high', 'old row', ?)", (NOW.isoformat(),))
        assert "tags" not in {r[1] for r in db.execute("PRAGMA table_info(findings)")}

    store = Store(url)  # opening it adds the column (migration 0002); the old row reads as untagged
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        assert "tags" in {r[1] for r in db.execute("PRAGMA table_info(findings)")}
    assert store.get_finding("fnd_old").tags is None
    assert (store.migration.path, store.migration.before) == ("pre-alembic", "0001")  # stamped, then upgraded
    seed(store, [finding("i-new", "100", {"team": "research"})], run="new")
    assert store.get_finding("fnd_i-new").tags == {"team": "research"}
    digest = digest_from_store(store, since=NOW - timedelta(days=7), now=NOW)
    assert {f["resource"]: f["team"] for f in digest["findings"]} == {"i-old": None, "i-new": "research"}
    post_digest(SlackNotifier(TOKEN, base_url=slack.base_url), digest, channel="#finops",
                team_channels={"research": "#research"})
    sent = posts(slack)
    assert "i-old" in sent["#finops"] and "i-new" in sent["#research"] and "i-old" not in sent["#research"]
    Store(url).close()  # a second start-up over the migrated database is a no-op


def test_the_daemon_posts_the_weekly_digest_per_team(tmp_path: Path, slack: FakeSlack, no_costwarden_env: None) -> None:
    from costwarden.agent.server.daemon import Daemon

    (tmp_path / "p.yml").write_text("policies:\n  - name: idle\n    resource: aws.ec2\n    filters: [{type: idle-gpu}]\n")
    settings = Settings(state_dir=tmp_path / "state", policies=[tmp_path / "p.yml"],
                        billing=BillingSettings(tag_map={"team": ["squad", "team"]}),
                        slack=SlackSettings(bot_token=TOKEN, channel="#finops", base_url=slack.base_url,
                                            team_channels={"research": "#research", "web": "#web"}))
    d = Daemon(settings, host="127.0.0.1", port=0)
    seed(d.store, [finding("i-1", "300", {"squad": "research"}), finding("i-2", "200", {"team": "search"})])
    d._housekeeping()
    d._housekeeping()  # the same hour again: nothing more
    sent = posts(slack)
    assert sorted(sent) == ["#finops", "#research"]  # web has nothing; search has no channel
    assert "i-1" in sent["#research"] and "i-2" not in sent["#research"] and "i-2" in sent["#finops"]
    assert [d.reason for d in d.store.decisions() if d.stage == "digest"] == ["weekly digest to 2 channels"]


def test_team_channels_in_the_config_file(tmp_path: Path, no_costwarden_env: None) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("slack:\n  team_channels:\n    research: '#research'\n    web: '#web-costs'\n")
    assert load_settings(cfg).slack.team_channels == {"research": "#research", "web": "#web-costs"}
    cfg.write_text("slack:\n  team_channels:\n    research: ''\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "slack.team_channels" in str(exc.value) and "research" in str(exc.value) and "\n" not in str(exc.value)
