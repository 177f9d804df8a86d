"""The request-rate budget (tools/rate_budget.py): the bucket math, the rules, the settings, and
the botocore hook on the clients Costwarden builds (against the many-accounts fake)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from costwarden.tools.rate_budget import Bucket, LocalBuckets, RateBudget, Rules, reserve


def _grants(arrivals: list[float], bucket: Bucket) -> list[float]:
    tat, out = None, []
    for now in arrivals:
        tat, wait = reserve(tat, now, bucket)
        out.append(now + wait)
    return out


@hsettings(max_examples=300, deadline=None)
@given(rate=st.floats(0.5, 200), burst_seconds=st.floats(0.01, 5),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=120))
def test_the_bucket_never_grants_more_than_rate_times_t_plus_burst_in_any_window(
        rate: float, burst_seconds: float, gaps: list[float]) -> None:
    bucket = Bucket(rate, max(1.0, rate * burst_seconds))
    arrivals, t = [], 0.0
    for g in gaps:
        t += g
        arrivals.append(t)
    grants = _grants(arrivals, bucket)
    assert all(g >= a for g, a in zip(grants, arrivals))  # never sent before it asked
    order = sorted(grants)
    for i in range(len(order)):  # every window [order[i], order[j]] holds j - i + 1 grants
        for j in range(i, len(order)):
            assert j - i + 1 <= rate * (order[j] - order[i]) + bucket.burst + 1e-6
    # and it waits no longer than the budget needs: a grant is the arrival, or one interval after the last grant
    for k in range(1, len(grants)):
        assert grants[k] <= max(arrivals[k], grants[k - 1] + bucket.interval) + 1e-6


def test_an_idle_bucket_lets_the_burst_through_then_spaces_requests() -> None:
    bucket = Bucket(10, 3)
    grants = _grants([0.0] * 6, bucket)
    assert grants[:3] == [0.0, 0.0, 0.0]
    assert grants[3:] == pytest.approx([0.1, 0.2, 0.3])


def test_a_key_over_budget_does_not_make_another_key_wait() -> None:
    clock = [0.0]
    slept: list[float] = []
    budget = RateBudget(Rules({"ec2:*": 2.0}, per_account=5.0), LocalBuckets(lambda: clock[0]), sleep=slept.append)
    for _ in range(20):  # one account hammers DescribeInstances
        budget.wait_for("ec2", "DescribeInstances", "111111111111")
    assert sum(slept) > 5  # 20 requests at 2/s after a burst of 2
    slept.clear()
    assert budget.wait_for("ec2", "DescribeVolumes", "222222222222") == 0  # another operation, another account
    assert budget.wait_for("sts", "AssumeRole", "222222222222") == 0  # no rule for sts: only the account's budget
    assert slept == []


@pytest.mark.parametrize(("limits", "expected"), [
    ({"ec2:DescribeInstances": 1, "ec2:*": 2, "*": 3}, "ec2:DescribeInstances"),
    ({"ec2:*": 2, "*": 3}, "ec2:*"),
    ({"*": 3}, "*"),
    ({"sts:AssumeRole": 1}, None),
], ids=["operation", "service", "default", "none"])
def test_the_most_specific_rule_applies(limits: dict[str, float], expected: str | None) -> None:
    assert Rules(limits).operation_key("ec2", "DescribeInstances") == expected


@pytest.mark.parametrize(("value", "needle"), [
    ({"sts.AssumeRole": 20}, "not an API operation: 'sts.AssumeRole'"),
    ({"AssumeRole": 20}, "not an API operation: 'AssumeRole'"),
    ({"sts:AssumeRole": 0}, "a rate is a positive, finite number"),
], ids=["dot", "no-service", "zero"])
def test_a_wrong_rate_limit_is_one_line_naming_the_field(tmp_path: Path, no_costwarden_env, value: dict,
                                                         needle: str) -> None:
    import yaml

    from costwarden.agent.config import ConfigError, load_settings

    cfg = tmp_path / "costwarden.yml"
    cfg.write_text(yaml.safe_dump({"fanout": {"rate_limits": value}}))
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    line = str(exc.value)
    assert "fanout.rate_limits" in line and needle in line and len(line.splitlines()) == 1


def test_the_settings_become_one_budget_per_process_in_memory_on_sqlite(tmp_path: Path, no_costwarden_env) -> None:
    from costwarden.agent.config import Settings
    from costwarden.agent.engine.context import rate_budget

    assert rate_budget(Settings(state_dir=tmp_path)) is None  # nothing budgeted: no hook at all
    s = Settings(state_dir=tmp_path, fanout={"rate_limits": {"sts:AssumeRole": 4}})
    b = rate_budget(s)
    assert isinstance(b.buckets, LocalBuckets) and rate_budget(s) is b


def test_the_hook_spaces_the_requests_every_client_sends(tmp_path: Path, no_costwarden_env, monkeypatch) -> None:
    """Real botocore clients against the fake: AssumeRole into 6 accounts at 5/s (burst 1) arrive spaced."""
    import time

    from costwarden.tools.aws.session import AwsClients
    from tests.fakes.accounts import AccountsFake
    from tests.fanout_estate import FAKE_ENV

    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    accounts = [f"{n:012d}" for n in range(100000000001, 100000000007)]
    fake = AccountsFake().start()
    try:
        budget = RateBudget(Rules({"sts:AssumeRole": 5.0}, burst_seconds=0.2), LocalBuckets())
        clients = AwsClients(dry_run=True, endpoint_url=fake.endpoint, budget=budget,
                             role_arns=[f"arn:aws:iam::{a}:role/r" for a in accounts])
        started = time.monotonic()
        for view in clients.accounts():
            view.account_id("us-east-1")
        times = sorted(t for t, _a, op in fake.arrivals if op == "AssumeRole")
        assert len(times) == 6
        assert times[-1] - started >= 5 * 0.2 - 0.05  # 6 requests at 5/s: the last one 1 s after the first
        assert all(b - a >= 0.15 for a, b in zip(times, times[1:]))
        assert budget.stats()["sts:AssumeRole"][0] == 6
    finally:
        fake.stop()


def test_a_database_that_cannot_answer_lets_the_request_go_with_one_log_line(caplog) -> None:
    pytest.importorskip("psycopg")
    from costwarden.tools.rate_budget import PgBuckets

    buckets = PgBuckets("postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2")  # nothing listens
    try:
        assert buckets.take("sts:AssumeRole", Bucket(1, 1)) == 0.0
    finally:
        buckets.close()
    (rec,) = [r for r in caplog.records if r.name == "costwarden.rate_budget"]
    assert "request sent without it" in rec.getMessage() and rec.key == "sts:AssumeRole"
