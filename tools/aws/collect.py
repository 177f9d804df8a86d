"""Read-only collection for aws.ec2 policies: inventory of each region, then batched metrics
for the candidates only. One region failing is reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from state.domain import Observation, Resource
from tools.aws.cloudwatch import MAX_QUERIES_PER_CALL, fetch_series, window
from tools.aws.ec2 import list_instances
from tools.aws.retry import error_code
from tools.aws.session import AwsClients
from tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector

T = TypeVar("T")
MAX_BATCH = 100  # resources per metrics batch


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def collect_ec2(clients: AwsClients, scope: Scope, plan: CollectPlan, report: CollectReport) -> Iterator[Observation]:
    """Yield observations batch by batch, so a 5,000-instance estate never sits in memory at once."""
    try:
        account = clients.account_id(scope.regions[0])
    except (ClientError, BotoCoreError) as exc:
        report.errors.append(f"aws: cannot identify the account: {error_code(exc)}")
        return
    start, end = window(plan.now, plan.lookback_hours)
    per_batch = max(1, min(MAX_BATCH, MAX_QUERIES_PER_CALL // max(1, len(plan.metrics))))
    for region in scope.regions:
        try:
            def candidates() -> Iterator[Resource]:
                for r in list_instances(clients, account, region):
                    report.inventoried += 1
                    if plan.wants(r):
                        report.candidates += 1
                        yield r

            for batch in batched(candidates(), per_batch):
                series = fetch_series(clients, region, batch, plan.metrics, start=start, end=end) if plan.metrics else {}
                for r in batch:
                    yield Observation(r, series.get(r.resource_id, {}))
        except Exception as exc:  # noqa: BLE001 - one region's failure must not end the sweep
            report.errors.append(f"aws {account}/{region}: {error_code(exc)}")


register_collector(CollectorSpec("aws.ec2", "aws", collect_ec2))
