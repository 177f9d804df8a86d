"""Read-only collection for AWS policies: for every account and region, a paginated inventory, then
batched metrics for the candidates only. One account or region failing is reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costwarden.state.domain import Observation, Resource
from costwarden.tools.aws.cloudwatch import (EC2_METRICS, MAX_QUERIES_PER_CALL, SAGEMAKER_ENDPOINT_METRICS, CwMetric,
                                  fetch_series)
from costwarden.tools.aws.ebs import list_snapshots, list_volumes
from costwarden.tools.aws.eip import list_addresses
from costwarden.tools.aws.ec2 import list_instances
from costwarden.tools.aws.retry import error_code
from costwarden.tools.aws.sagemaker import list_endpoints
from costwarden.tools.collectors import (Collector, CollectorSpec, CollectPlan, CollectReport, Scope, batched,
                              register_collector, window)
from costwarden.tools.errors import ToolError
from costwarden.tools.inventory import listing

MAX_BATCH = MAX_QUERIES_PER_CALL  # resources per batch when no metrics are needed (inventory-only policies)


def resources_per_batch(metrics: int) -> int:
    """Resources per GetMetricData batch: as many as fill one call's 500 queries (idle-gpu's 4 metrics:
    125 instances a call, so 5,000 instances take 40 calls, not 50). A resource whose metric fans out
    (SageMaker variants) may push a batch past 500 queries; fetch_series then splits it into calls."""
    return max(1, min(MAX_BATCH, MAX_QUERIES_PER_CALL // max(1, metrics)))


def each_account(clients: Any, scope: Scope, report: CollectReport) -> Iterator[tuple[Any, str]]:
    """(account clients, account id) for every configured account; one that cannot be assumed or
    identified (AccessDenied, expired role) is reported and skipped, and the others go on."""
    for view in clients.accounts():
        try:
            account = view.account_id(scope.regions[0])
        except (ClientError, BotoCoreError, ToolError) as exc:
            report.errors.append(f"aws {view.label}: cannot assume or identify the account: {error_code(exc)}")
            continue
        yield view, account


# (account clients, account id, region, the sweep's Inventory or None) -> the resources, page by page
Lister = Callable[[Any, str, str, Any], Iterable[Resource]]


def make_collector(list_resources: Lister, catalog: dict[str, CwMetric] | None) -> Collector:
    """A collector over accounts x regions: paginated inventory, then batched metrics for the candidates."""

    def collect(clients: Any, scope: Scope, plan: CollectPlan, report: CollectReport) -> Iterator[Observation]:
        start, end = window(plan.now, plan.lookback_hours)
        metrics = [m for m in plan.metrics if m.name in catalog] if catalog else []
        per_batch = resources_per_batch(len(metrics))
        for view, account in each_account(clients, scope, report):
            for region in scope.regions:
                try:
                    def candidates() -> Iterator[Resource]:
                        for r in list_resources(view, account, region, scope.inventory):
                            report.inventoried += 1
                            if plan.wants(r):
                                report.candidates += 1
                                yield r

                    for batch in batched(candidates(), per_batch):
                        series = (fetch_series(view, region, batch, metrics, start=start, end=end, catalog=catalog,
                                               requests_for=plan.metrics_for)
                                  if metrics and catalog else {})
                        for r in batch:
                            yield Observation(r, series.get(r.resource_id, {}))
                except Exception as exc:  # noqa: BLE001 - one region's failure must not end the sweep
                    report.errors.append(f"aws {account}/{region}: {error_code(exc)}")

    return collect


def volumes(clients: Any, account: str, region: str, inventory: Any) -> list[Resource]:
    """The region's EBS volumes, described once a sweep: the volume policies and the snapshot
    inventory (is a snapshot's source volume gone?) read the same listing."""
    return listing(inventory, ("aws.ebs-volume", account, region), lambda: list_volumes(clients, account, region))


def snapshots(clients: Any, account: str, region: str, inventory: Any) -> Iterable[Resource]:
    return list_snapshots(clients, account, region,
                          volume_ids={v.resource_id for v in volumes(clients, account, region, inventory)})


def streamed(list_resources: Callable[[Any, str, str], Iterable[Resource]]) -> Lister:
    """A lister read page by page, never held: the policies of its type share one read (tools/sharing.py)."""
    return lambda clients, account, region, _inventory: list_resources(clients, account, region)


# Observations are yielded batch by batch, so a 5,000-instance estate never sits in memory at once.
collect_ec2 = make_collector(streamed(list_instances), EC2_METRICS)

# Every account's identity (each_account): GetCallerIdentity, which IAM allows every principal anyway.
# The series' cloudwatch:GetMetricData is declared by the filters that ask for them.
IDENTITY = ("sts:GetCallerIdentity",)
register_collector(CollectorSpec("aws.ec2", "aws", collect_ec2, permissions=(*IDENTITY, "ec2:DescribeInstances")))
register_collector(CollectorSpec("aws.sagemaker-endpoint", "aws",
                                 make_collector(streamed(list_endpoints), SAGEMAKER_ENDPOINT_METRICS),
                                 permissions=(*IDENTITY, "sagemaker:ListEndpoints", "sagemaker:DescribeEndpoint",
                                              "sagemaker:DescribeEndpointConfig", "sagemaker:ListTags")))
register_collector(CollectorSpec("aws.ebs-volume", "aws", make_collector(volumes, None),
                                 permissions=(*IDENTITY, "ec2:DescribeVolumes")))
register_collector(CollectorSpec("aws.ebs-snapshot", "aws", make_collector(snapshots, None),
                                 permissions=(*IDENTITY, "ec2:DescribeSnapshots", "ec2:DescribeVolumes",
                                              "ec2:DescribeImages")))
register_collector(CollectorSpec("aws.elastic-ip", "aws", make_collector(streamed(list_addresses), None),
                                 permissions=(*IDENTITY, "ec2:DescribeAddresses")))
