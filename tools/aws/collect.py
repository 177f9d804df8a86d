"""Read-only collection for aws.ec2 policies: inventory of each region, then batched metrics
for the candidates only. One region failing is reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from state.domain import MetricRequest, Observation, Resource
from tools.aws.cloudwatch import fetch_series, window
from tools.aws.ec2 import list_instances
from tools.aws.retry import error_code
from tools.aws.session import AwsClients

BATCH = 100  # resources per metrics batch: 4 metrics x 100 = 400 queries, under the 500 limit


@dataclass
class CollectReport:
    inventoried: int = 0
    candidates: int = 0
    errors: list[str] = field(default_factory=list)


def _batches(items: Iterator[Resource], size: int) -> Iterator[list[Resource]]:
    batch: list[Resource] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def collect_ec2(clients: AwsClients, regions: list[str], *, wants: Callable[[Resource], bool],
                metrics: list[MetricRequest], lookback_hours: int, now: datetime,
                report: CollectReport) -> Iterator[Observation]:
    """Yield observations batch by batch, so a 5,000-instance estate never sits in memory at once."""
    try:
        account = clients.account_id(regions[0])
    except (ClientError, BotoCoreError) as exc:
        report.errors.append(f"aws: cannot identify the account: {error_code(exc)}")
        return
    start, end = window(now, lookback_hours)
    per_batch = max(1, min(BATCH, 500 // max(1, len(metrics))))
    for region in regions:
        try:
            def candidates() -> Iterator[Resource]:
                for r in list_instances(clients, account, region):
                    report.inventoried += 1
                    if wants(r):
                        report.candidates += 1
                        yield r

            for batch in _batches(candidates(), per_batch):
                series = fetch_series(clients, region, batch, metrics, start=start, end=end) if metrics else {}
                for r in batch:
                    yield Observation(r, series.get(r.resource_id, {}))
        except Exception as exc:  # noqa: BLE001 - one region's failure must not end the sweep
            report.errors.append(f"aws {account}/{region}: {error_code(exc)}")
