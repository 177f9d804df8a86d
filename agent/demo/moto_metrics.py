"""moto's GetMetricData, indexed: the same answers without its quadratic scan.

moto (5.2) answers each MetricStat query by walking every period of the window and, for each,
every datapoint the region holds in the window: periods x datapoints per query. The demo's audit
asks ~50 queries over a week of hourly points (169 periods x ~1,850 points), which cost ~0.7 s of
the first impression (and grows with the lookback squared). This version groups the window's
datapoints into series once per call, applies moto's own match to one datapoint of each series
(everything it compares - name, namespace, dimensions, unit - is the series' identity), and buckets
the matching points by period, in their stored order, for moto's own `Statistics`. Calls with
metric-math or Metrics Insights expressions go to moto's code unchanged.

The demo installs it for the life of its in-process moto server (`indexed_get_metric_data`); the
audit still reads through real boto3 and moto's HTTP API. tests/test_demo_moto_metrics.py checks
that both give the same results.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.models import CloudWatchBackend, Dimension, MetricDatumBase, Statistics


def _matches(md: MetricDatumBase, namespace: str, name: str, dimensions: list[Dimension], unit: str | None) -> bool:
    """moto's per-datapoint filter, verbatim (with dimensions it compares the name and dimensions only)."""
    if dimensions:
        ok = sorted(md.dimensions) == sorted(dimensions) and md.name == name
    else:
        ok = md.namespace == namespace and md.name == name
    return ok and (not unit or md.unit == unit)


def get_metric_data(backend: CloudWatchBackend, queries: list[dict[str, Any]], start_time: Any, end_time: Any,
                    scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
    """`CloudWatchBackend.get_metric_data` for MetricStat queries, in O(datapoints + queries x series)."""
    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time > end_time:
        raise ValidationError("The parameter EndTime must be greater than StartTime.")
    if start_time == end_time:
        raise ValidationError("The parameter StartTime must not equal parameter EndTime.")
    # series identity -> (a datapoint of it, [(stored position, datapoint)] in stored order)
    series: dict[tuple[Any, ...], tuple[MetricDatumBase, list[tuple[int, MetricDatumBase]]]] = {}
    for i, md in enumerate(backend.get_all_metrics()):
        if start_time <= md.timestamp < end_time:
            key = (md.namespace, md.name, md.unit, tuple((d.name, d.value) for d in md.dimensions))
            series.setdefault(key, (md, []))[1].append((i, md))
    results = []
    for query in queries:
        metric_stat = query["MetricStat"]
        name = metric_stat["Metric"]["MetricName"]
        delta = timedelta(seconds=int(metric_stat["Period"]))
        dimensions = [Dimension(name=d["Name"], value=d["Value"]) for d in metric_stat["Metric"].get("Dimensions", [])]
        points = sorted((p for first, pts in series.values()
                         if _matches(first, metric_stat["Metric"]["Namespace"], name, dimensions,
                                     metric_stat.get("Unit"))
                         for p in pts), key=lambda p: p[0])
        buckets: dict[int, list[MetricDatumBase]] = {}
        for _, md in points:
            buckets.setdefault((md.timestamp - start_time) // delta, []).append(md)
        stat = metric_stat["Stat"]
        values: list[Any] = []
        timestamps = []
        for k in sorted(buckets):
            stats = Statistics([stat], start_time + k * delta)
            stats.metric_data = buckets[k]
            values.append(stats.get_statistics_for_type(stat))
            timestamps.append(stats.timestamp)
        if scan_by == "TimestampDescending":
            timestamps.reverse()
            values.reverse()
        if query.get("ReturnData", True):
            results.append({"id": query["Id"], "label": query.get("Label") or f"{name} {stat}", "values": values,
                            "timestamps": timestamps, "status_code": "Complete"})
    return results


@contextmanager
def indexed_get_metric_data() -> Iterator[None]:
    """Answer GetMetricData with `get_metric_data` while inside; moto's own for expressions and after."""
    original = CloudWatchBackend.get_metric_data

    def patched(self: CloudWatchBackend, queries: list[dict[str, Any]], start_time: Any, end_time: Any,
                scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
        if any("MetricStat" not in q for q in queries):
            return original(self, queries, start_time, end_time, scan_by)
        return get_metric_data(self, queries, start_time, end_time, scan_by)

    CloudWatchBackend.get_metric_data = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        CloudWatchBackend.get_metric_data = original  # type: ignore[method-assign]
