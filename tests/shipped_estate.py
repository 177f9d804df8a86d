"""The demo's AWS estate in the test moto server, and the shipped packs' AWS policies that sweep it
(test_inventory, test_permissions): GPU instances in two regions, an idle SageMaker endpoint, an
unattached volume, an orphaned snapshot and an unassociated address, in one account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.engine.sweep import SweepResult, run_sweep
from costwarden.policies.loader import LoadedPolicy, default_pack_path, load_policies

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)  # seeded and swept on this clock, never today's
REGIONS = ["us-east-1", "us-west-2"]


@pytest.fixture
def estate(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """8 days of hourly metrics (the packs look back 7), GetMetricData answered by the demo's index."""
    from costwarden.agent.demo.estate import seed_estate
    from costwarden.agent.demo.moto_metrics import indexed_get_metric_data
    from costwarden.agent.demo.waste import seed_waste

    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    session = boto3.Session()
    ids = seed_estate(aws.endpoint, days=8, now=NOW, session=session)
    waste = seed_waste(session, aws.endpoint, now=NOW)
    with indexed_get_metric_data():
        aws.clear_calls()
        yield {"ids": ids, "waste": waste}


def shipped_aws_policies() -> list[LoadedPolicy]:
    return [p for p in load_policies([default_pack_path().parent]) if p.policy.resource.startswith("aws.")]


def settings_for(aws: Any, state_dir: Path) -> Settings:
    return Settings(state_dir=state_dir, aws=AwsSettings(regions=REGIONS, endpoint_url=aws.endpoint))


def sweep(aws: Any, state_dir: Path, policies: list[LoadedPolicy]) -> SweepResult:
    return run_sweep(settings_for(aws, state_dir), policies, dry_run=True, now=NOW)
