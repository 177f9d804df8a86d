"""An organisation of many accounts on tests/fakes/accounts.py, shared by tests/test_fanout_pg.py and
bench/fanout.py: each account holds one idle GPU instance (the finding, and with `live` its stop
action), one busy GPU instance and one CPU instance, with 9 days of hourly metrics."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROLE = "CostwardenReadOnly"
HISTORY_HOURS = 9 * 24
POLICY = """
policies:
  - name: idle-gpu-instances
    resource: aws.ec2
    mode: auto
    filters: [{type: idle-gpu, lookback_days: 1}]
    actions: [stop]
    limits: {cooldown_hours: 0}
"""


def account_ids(n: int) -> list[str]:
    return [f"{100000000000 + i:012d}" for i in range(n)]


def build(fake: Any, accounts: list[str], regions: list[str], now: datetime) -> dict[str, str]:
    """Seed every account; {idle instance id: account} (what the sweep must find, once each)."""
    end = int(now.timestamp()) // 3600 * 3600 + 2 * 3600
    start = end - HISTORY_HOURS * 3600
    idle, busy = [1.0] * HISTORY_HOURS, [85.0] * HISTORY_HOURS
    expected: dict[str, str] = {}
    cw = fake.cloudwatch
    for account in accounts:
        ec2 = fake.account(account)
        for region in regions:
            tags = {"env": "dev", "team": "ml"}
            (idle_id,) = ec2.add_instances(region, "g5.xlarge", 1, tags=tags)
            (busy_id,) = ec2.add_instances(region, "g5.xlarge", 1, tags=tags)
            ec2.add_instances(region, "m5.xlarge", 1, tags=tags)
            for iid, values in ((idle_id, idle), (busy_id, busy)):
                dims = {"InstanceId": iid}
                for ns, metric in (("CWAgent", "nvidia_smi_utilization_gpu"), ("AWS/EC2", "CPUUtilization")):
                    cw.put_series(region, ns, metric, dims, start=start, period=3600, values=values)
                for metric in ("NetworkIn", "NetworkOut"):
                    cw.put_series(region, "AWS/EC2", metric, dims, start=start, period=3600,
                                  values=[v * 1e4 for v in values])
            expected[idle_id] = account
    return expected


def write_config(tmp: Path, *, database_url: str, endpoint: str, accounts: list[str], regions: list[str],
                 live: bool = False, concurrency: int = 8, max_attempts: int = 10,
                 heartbeat_s: float = 1.0, stalled_s: float = 4.0, fanout: dict[str, Any] | None = None,
                 max_resources: int | None = None) -> Path:
    """A config on the fake and PostgreSQL with one role per account; returns its path."""
    tmp.mkdir(parents=True, exist_ok=True)
    policy = tmp / "policies.yml"
    policy.write_text(POLICY + (f"    max-resources: {max_resources}\n" if max_resources is not None else ""))
    cfg = {"dry_run": not live, "state_dir": str(tmp / "state"), "database_url": database_url,
           "policies": [str(policy)], "log_level": "WARNING",
           "aws": {"regions": regions, "endpoint_url": endpoint,
                   "accounts": [f"arn:aws:iam::{a}:role/{ROLE}" for a in accounts],
                   "retries": {"mode": "standard", "max_attempts": max_attempts}},
           "fanout": {"worker_concurrency": concurrency, "heartbeat_seconds": heartbeat_s,
                      "stalled_after_seconds": stalled_s, "max_attempts": 3, **(fanout or {})}}
    path = tmp / "costwarden.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


FAKE_ENV = {"AWS_ACCESS_KEY_ID": "AKIDBASE", "AWS_SECRET_ACCESS_KEY": "base", "AWS_DEFAULT_REGION": "us-east-1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
