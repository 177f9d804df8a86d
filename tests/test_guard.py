"""The guard's decisions, one limit at a time."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from costwarden.policies.guard import GuardContext, decide, in_window
from costwarden.policies.schema import ChangeWindow, Policy
from costwarden.state.domain import PlannedAction

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)  # a Monday


def policy(mode: str = "auto", **limits) -> Policy:
    return Policy.model_validate({"name": "p", "resource": "aws.ec2", "mode": mode,
                                  "filters": [{"type": "idle-gpu"}], "actions": ["stop"], "limits": limits})


def action(savings: str = "100", key: str = "aws:1:us-east-1:i-1", destructive: bool = False) -> PlannedAction:
    return PlannedAction("act_1", "fnd_1", "p", "stop", "aws.ec2.stop_instance", {}, Decimal(savings), key,
                         destructive=destructive)


def test_auto_within_limits():
    assert decide(policy(), action(), {}, GuardContext(NOW))[0] == "auto"


def test_protected_tag_is_skipped_whatever_the_mode():
    for mode in ("report", "approve", "auto"):
        d, reason = decide(policy(mode), action(), {"costwarden:protect": "TRUE"}, GuardContext(NOW))
        assert d == "skip" and "costwarden:protect" in reason
    custom = policy(protected_tags={"owner": "finance"})
    assert decide(custom, action(), {"owner": "finance"}, GuardContext(NOW))[0] == "skip"
    assert decide(custom, action(), {"costwarden:protect": "true"}, GuardContext(NOW))[0] == "auto"


def test_report_and_approve_modes():
    assert decide(policy("report"), action(), {}, GuardContext(NOW)) == ("report", "policy mode is report")
    assert decide(policy("approve"), action(), {}, GuardContext(NOW))[0] == "needs_approval"


def test_production_always_needs_approval():
    d, reason = decide(policy(), action(), {"env": "Production"}, GuardContext(NOW))
    assert d == "needs_approval" and "env=Production" in reason


def test_auto_action_over_the_spend_cap_needs_approval():
    d, reason = decide(policy(max_monthly_usd_per_auto_action=1000), action("16030.80"), {}, GuardContext(NOW))
    assert d == "needs_approval" and "16,030.80" in reason


def test_destructive_actions_need_approval_in_auto_mode():
    assert decide(policy(), action(destructive=True), {}, GuardContext(NOW))[0] == "needs_approval"


def test_max_actions_per_run_caps_what_goes_through():
    p, g = policy(max_actions_per_run=2), GuardContext(NOW)
    decisions = [decide(p, action(key=f"k{i}"), {}, g)[0] for i in range(4)]
    assert decisions == ["auto", "auto", "report", "report"]


def test_cooldown_skips_recently_acted_resources():
    g = GuardContext(NOW, recently_acted={"aws:1:us-east-1:i-1"})
    d, reason = decide(policy(), action(), {}, g)
    assert d == "skip" and "cooldown" in reason


def test_change_windows():
    nightly = ChangeWindow(start="22:00", end="06:00", days=["mon", "tue", "wed", "thu", "fri"])
    assert not in_window(NOW, nightly)  # Monday 14:00
    assert in_window(datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc), nightly)  # Monday night
    assert in_window(datetime(2026, 11, 24, 5, 59, tzinfo=timezone.utc), nightly)  # Tuesday early = Monday's window
    assert not in_window(datetime(2026, 11, 23, 5, 0, tzinfo=timezone.utc), nightly)  # Sunday's window: not listed
    p = policy(change_windows=[{"start": "22:00", "end": "06:00"}])
    d, reason = decide(p, action(), {}, GuardContext(NOW))
    assert d == "report" and "change window" in reason
    assert decide(p, action(), {}, GuardContext(datetime(2026, 11, 23, 23, tzinfo=timezone.utc)))[0] == "auto"


def test_time_zone_of_a_window():
    berlin = ChangeWindow(start="09:00", end="17:00", timezone="Europe/Berlin")
    assert in_window(NOW, berlin)  # 14:00 UTC = 15:00 in Berlin
    assert not in_window(datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc), berlin)


def test_content_hash_changes_with_the_policy_text():
    assert policy().content_hash == policy().content_hash
    assert policy().content_hash != policy(cooldown_hours=1).content_hash


def test_unquoted_yaml_times_are_read_as_times():
    import yaml

    raw = yaml.safe_load("start: 22:00\nend: 06:30\n")  # YAML 1.1: base-60 integers 1320 and 390
    w = ChangeWindow.model_validate(raw)
    assert (w.start.hour, w.start.minute, w.end.hour, w.end.minute) == (22, 0, 6, 30)
    assert in_window(datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc), w)
