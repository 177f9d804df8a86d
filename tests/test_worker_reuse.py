"""What a fan-out worker process reuses across its jobs (agent/engine/worker_cache.py,
tools/aws/reuse.py) never carries one account's credentials into another account's job.

Jobs of many accounts run at once in the threads of one process, sharing one WorkerCache, as in a
worker; every request is checked where it arrives (tests/fakes/accounts.py): counted for the
account of the key that signed it, and its session token must be the one AssumeRole handed out
with that key. In live mode each account's stop action goes to the account's own fake, which
refuses an instance of another account."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest

from costwarden.agent.config import load_settings
from costwarden.agent.engine.part import sweep_part
from costwarden.agent.engine.worker_cache import WorkerCache
from costwarden.policies.loader import load_policies
from costwarden.state.store import Store
from costwarden.state.store.parts import PartKey
from costwarden.tools.aws.reuse import BaseSession
from costwarden.tools.aws.session import AwsClients
from tests.fakes.accounts import AccountsFake
from tests.fanout_estate import FAKE_ENV, ROLE, account_ids, build, write_config

N_ACCOUNTS = 8


@pytest.fixture
def fake(no_costwarden_env, monkeypatch):
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    fake = AccountsFake(latency_s=0.03).start()  # a round trip: jobs of different accounts overlap
    yield fake
    fake.stop()


@pytest.mark.parametrize("live", [False, True], ids=["dry-run", "live"])
def test_concurrent_jobs_in_one_worker_sign_with_their_own_accounts_credentials(tmp_path: Path, fake: AccountsFake,
                                                                               live: bool) -> None:
    accounts = account_ids(N_ACCOUNTS)
    now = datetime.now(timezone.utc)
    expected = build(fake, accounts, ["us-east-1"], now)
    cfg = write_config(tmp_path, database_url=f"sqlite:///{tmp_path / 'cw.db'}", endpoint=fake.endpoint,
                       accounts=accounts, regions=["us-east-1"], live=live)
    settings = load_settings(cfg)
    (lp,) = load_policies(list(settings.policies))
    store = Store(settings.db_url)
    store.start_run("run_reuse", dry_run=not live, policies=[lp.name], trigger="schedule")
    keys = [PartKey("run_reuse", lp.name, a, "us-east-1", f"arn:aws:iam::{a}:role/{ROLE}") for a in accounts]
    store.plan_parts(keys)
    cache = WorkerCache()  # one per worker process: every job below shares it
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda k: sweep_part(settings, lp, k, store=store, dry_run=not live, now=now,
                                                      worker="w", cache=cache), keys))
    assert statuses == ["done"] * N_ACCOUNTS
    assert not fake.mismatched  # no request carried one account's key with another's token
    once = {a: 1 for a in accounts}
    for op in ("AssumeRole", "GetMetricData"):  # each account's calls, signed as itself
        assert fake.per_account(op) == once, op
    described = fake.per_account("DescribeInstances")  # live: the stop action's checks describe too
    assert described == once if not live else set(described) == set(accounts) and len(set(described.values())) == 1
    findings = store.findings_for_run("run_reuse")
    assert {f.resource_id: f.account for f in findings} == expected  # each account found its own idle instance
    run = store.get_run("run_reuse")
    assert run.status == "done", run.errors
    calls = {(c["service"], c["operation"]): c["count"] for c in run.api_calls}
    if live:  # the stop of each account's instance, signed with that account's key (the fake refuses others)
        assert fake.per_account("StopInstances") == once
        assert Counter(a.status for a in store.actions_for_run("run_reuse")) == {"done": N_ACCOUNTS}
    else:  # dry-run: not one mutating call reached AWS
        assert fake.per_account("StopInstances") == {} and ("ec2", "StopInstances") not in calls
        assert all(op.startswith(("Describe", "Get", "Assume")) for (_svc, op) in calls)
    store.close()


def test_role_clients_share_their_class_not_their_credentials(fake: AccountsFake) -> None:
    """Two jobs' AwsClients on one base Session: the EC2 client class is built once, each role's
    client signs as its own account, and a Session not made by Costwarden keeps botocore's own class."""
    a, b = account_ids(2)
    for account in (a, b):
        fake.account(account).add_instances("us-east-1", "m5.xlarge", 1)
    base = BaseSession.new()
    jobs = [AwsClients(dry_run=True, endpoint_url=fake.endpoint, base=base,
                       role_arns=[f"arn:aws:iam::{x}:role/{ROLE}"]) for x in (a, b)]
    (va,), (vb,) = (j.accounts() for j in jobs)
    ec2_a, ec2_b = va.client("ec2", "us-east-1"), vb.client("ec2", "us-east-1")
    assert type(ec2_a) is type(ec2_b)  # the cached class
    assert ec2_a is not ec2_b
    for client in (ec2_b, ec2_a, ec2_b):
        client.describe_instances()
    assert fake.per_account("DescribeInstances") == {a: 1, b: 2} and not fake.mismatched
    own = boto3.Session().client("ec2", region_name="us-east-1", endpoint_url=fake.endpoint)
    assert type(own) is not type(ec2_a)
    s3 = va.client("s3", "us-east-1")  # boto3's handlers are on the role Session too (they add S3's transfers)
    assert hasattr(s3, "upload_file")
    assert [j.call_log.calls for j in jobs] == [Counter({"sts.AssumeRole": 1, "ec2.DescribeInstances": 1}),
                                                Counter({"sts.AssumeRole": 1, "ec2.DescribeInstances": 2})]
