"""CloudWatch metrics through GetMetricData, batched: at most 500 queries a call, never one call
per resource (Cloud Custodian's GetMetricStatistics per resource per metric is the cost we beat).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from state.domain import MetricRequest, Resource, Series
from tools.aws.retry import aws_retry
from tools.aws.session import AwsClients

MAX_QUERIES_PER_CALL = 500  # the API's limit; moto does not enforce it, so we must


@dataclass(frozen=True)
class CwMetric:
    """A CloudWatch metric keyed by the resource id in `dimension`.

    `fan_out` = (dimension name, resource attr): one query per value listed in `resource.attrs[attr]`
    (e.g. one per SageMaker production variant), merged into one series per resource: summed per
    timestamp for the Sum statistic, averaged otherwise.
    """

    namespace: str
    metric: str
    dimension: str
    fan_out: tuple[str, str] | None = None

    def dimension_sets(self, r: Resource) -> list[list[dict[str, str]]]:
        base = [{"Name": self.dimension, "Value": r.resource_id}]
        if self.fan_out is None:
            return [base]
        name, attr = self.fan_out
        return [base + [{"Name": name, "Value": str(v)}] for v in r.attrs.get(attr) or []]


# Logical metric names (what detectors ask for) -> CloudWatch metrics, per resource type.
EC2_METRICS: dict[str, CwMetric] = {
    # The CloudWatch agent's NVIDIA metric, aggregated per instance (aggregation_dimensions [["InstanceId"]]).
    "gpu_utilization": CwMetric("CWAgent", "nvidia_smi_utilization_gpu", "InstanceId"),
    "gpu_memory_utilization": CwMetric("CWAgent", "nvidia_smi_utilization_memory", "InstanceId"),
    "cpu_utilization": CwMetric("AWS/EC2", "CPUUtilization", "InstanceId"),
    "network_in": CwMetric("AWS/EC2", "NetworkIn", "InstanceId"),
    "network_out": CwMetric("AWS/EC2", "NetworkOut", "InstanceId"),
}


# SageMaker real-time endpoints: one query per production variant (dims EndpointName + VariantName).
SAGEMAKER_ENDPOINT_METRICS: dict[str, CwMetric] = {
    "invocations": CwMetric("AWS/SageMaker", "Invocations", "EndpointName", ("VariantName", "variant_names")),
    "gpu_utilization": CwMetric("/aws/sagemaker/Endpoints", "GPUUtilization", "EndpointName",
                                ("VariantName", "variant_names")),
    "cpu_utilization": CwMetric("/aws/sagemaker/Endpoints", "CPUUtilization", "EndpointName",
                                ("VariantName", "variant_names")),
}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@aws_retry
def _get_metric_data(client: Any, **kwargs: Any) -> dict[str, Any]:
    return client.get_metric_data(**kwargs)


def fetch_series(clients: AwsClients, region: str, resources: Iterable[Resource], requests: list[MetricRequest],
                 *, start: datetime, end: datetime,
                 catalog: dict[str, CwMetric] = EC2_METRICS) -> dict[str, dict[str, Series]]:
    """Return {resource_id: {metric name: Series}} for every resource and known request."""
    queries: list[dict[str, Any]] = []
    index: dict[str, tuple[str, str]] = {}
    fanned: dict[tuple[str, str], str] = {}  # (resource id, metric name) -> stat, for series merged from several queries
    for r in resources:
        for req in requests:
            m = catalog.get(req.name)
            if m is None:
                continue
            dim_sets = m.dimension_sets(r)
            if len(dim_sets) > 1:
                fanned[(r.resource_id, req.name)] = req.stat
            for dims in dim_sets:
                qid = f"q{len(queries)}"
                index[qid] = (r.resource_id, req.name)
                queries.append({
                    "Id": qid,
                    "MetricStat": {
                        "Metric": {"Namespace": m.namespace, "MetricName": m.metric, "Dimensions": dims},
                        "Period": req.period_seconds, "Stat": req.stat,
                    },
                    "ReturnData": True,
                })
    out: dict[str, dict[str, Series]] = {}
    client = clients.client("cloudwatch", region)
    for batch in _chunks(queries, MAX_QUERIES_PER_CALL):
        kwargs: dict[str, Any] = {"MetricDataQueries": batch, "StartTime": start, "EndTime": end,
                                  "ScanBy": "TimestampAscending"}
        while True:
            page = _get_metric_data(client, **kwargs)
            for result in page.get("MetricDataResults", []):
                rid, name = index[result["Id"]]
                series = out.setdefault(rid, {}).setdefault(name, Series(name))
                series.points.extend((ts.timestamp(), float(v))
                                     for ts, v in zip(result.get("Timestamps", []), result.get("Values", [])))
            token = page.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
    for (rid, name), stat in fanned.items():
        s = out.get(rid, {}).get(name)
        if s is not None:
            s.points = _merge(s.points, stat)
    for per_resource in out.values():
        for s in per_resource.values():
            s.points.sort()
    return out


def _merge(points: list[tuple[float, float]], stat: str) -> list[tuple[float, float]]:
    """Points of several dimension sets at the same timestamp become one: summed for Sum, else averaged."""
    by_ts: dict[float, list[float]] = {}
    for ts, v in points:
        by_ts.setdefault(ts, []).append(v)
    if stat == "Sum":
        return [(ts, sum(vs)) for ts, vs in by_ts.items()]
    return [(ts, sum(vs) / len(vs)) for ts, vs in by_ts.items()]

