"""Cloud Monitoring as the utilization source of Compute Engine instances.

Why Cloud Monitoring: every GCE instance already has its CPU and network metrics there with no
agent, and an instance running Google's Ops Agent adds its GPUs (read through NVML). Nothing
has to be scraped or exported, unlike Prometheus/DCGM.

The metric types, checked against Google's metric lists and the Ops Agent's GPU dashboards:
  - `agent.googleapis.com/gpu/utilization`: Ops Agent, GAUGE DOUBLE in percent, one series per
    GPU (metric labels `gpu_number`, `model`, `uuid`) on resource `gce_instance`. Configurable
    (`gcp.monitoring.gpu_metric`, with `gpu_metric_scale` for a 0-1 metric): the out-of-band
    `compute.googleapis.com/instance/gpu/*` metrics are GPU-generation specific and we could not
    confirm a utilization one common to A2/A3/G2.
  - `compute.googleapis.com/instance/cpu/utilization`: built in, GAUGE DOUBLE, a fraction of the
    allocated CPU (0-1, scaled x100 here): the fallback signal when there is no GPU metric.
  - `compute.googleapis.com/instance/network/received_bytes_count` / `sent_bytes_count`: built
    in, DELTA INT64 bytes; the detector's fallback needs the network quiet as well as the CPU.

How it is read: ONE `list_time_series` filter per metric per project
(`metric.type = "..." AND resource.type = "gce_instance"`, narrowed to the candidates'
`resource.labels.instance_id` while they are few), aligned server-side to hourly points
(ALIGN_MEAN, or ALIGN_SUM for byte counts, 3600 s) and reduced across an instance's series
(REDUCE_MAX for GPUs: the busiest GPU of each hour, as the Prometheus source does; a node
whose one GPU in eight works is not idle), then paged with next_page_token. Never one call per
instance. Series map back to Resources by numeric instance id, which unlike a name is unique
in a project. A project whose reads fail (403, API disabled) raises one ToolError for that
project only; no half-read project is ever judged (a missing GPU series would let the CPU
fallback call a busy GPU idle).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costwarden.state.domain import Resource, Series
from costwarden.tools.errors import ToolError
from costwarden.tools.gcp.session import gcp_error

ALIGNMENT_SECONDS = 3600
GROUP_BY = ("resource.labels.instance_id",)
CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
NET_IN_METRIC = "compute.googleapis.com/instance/network/received_bytes_count"
NET_OUT_METRIC = "compute.googleapis.com/instance/network/sent_bytes_count"


@dataclass(frozen=True)
class MetricQuery:
    """One logical metric (the name detectors use) and how Cloud Monitoring gives it."""

    name: str
    metric_type: str
    aligner: str  # Aggregation.Aligner name
    reducer: str  # Aggregation.Reducer name, across one instance's series
    scale: float = 1.0  # to the unit detectors expect (percent, bytes)


def metric_queries(wanted: Iterable[str], gpu_metric: str, gpu_scale: float = 1.0) -> list[MetricQuery]:
    """The queries for the logical metrics a plan wants, in a fixed order (GPU first)."""
    table = [
        MetricQuery("gpu_utilization", gpu_metric, "ALIGN_MEAN", "REDUCE_MAX", gpu_scale),
        MetricQuery("cpu_utilization", CPU_METRIC, "ALIGN_MEAN", "REDUCE_MEAN", 100.0),
        MetricQuery("network_in", NET_IN_METRIC, "ALIGN_SUM", "REDUCE_SUM"),
        MetricQuery("network_out", NET_OUT_METRIC, "ALIGN_SUM", "REDUCE_SUM"),
    ]
    names = set(wanted)
    return [q for q in table if q.name in names]


def time_series_filter(metric_type: str, instance_ids: Sequence[str] | None = None) -> str:
    """A Monitoring filter for one metric on GCE instances, optionally only these (numeric) instance ids."""
    text = f'metric.type = "{metric_type}" AND resource.type = "gce_instance"'
    if instance_ids:
        ids = sorted({i for i in instance_ids if i.isdigit()})  # ids are digits: nothing to escape in the regex
        text += f' AND resource.labels.instance_id = monitoring.regex.full_match("{"|".join(ids)}")'
    return text


def points_of(ts: Any, scale: float) -> list[tuple[float, float]]:
    """A TimeSeries' points as (epoch seconds of the aligned period's end, value), oldest first.
    The API sends them newest first, as doubles or (byte counts) int64s. Read through the raw
    protobuf: proto-plus wrappers cost ~70 us a point, 6 s for 500 instances' week."""
    pb = type(ts).pb(ts) if hasattr(type(ts), "pb") else ts
    out = []
    for p in pb.points:
        kind = p.value.WhichOneof("value")
        if kind not in ("double_value", "int64_value"):
            continue
        end = p.interval.end_time
        out.append((end.seconds + end.nanos / 1e9, float(getattr(p.value, kind)) * scale))
    out.sort()
    return out


class MonitoringUtilization:
    """GPU, CPU and network series of GCE instances from Cloud Monitoring (see the module docstring).

    `batch_size` tells the collector to hand over a whole project's candidates at once (up to
    that many), so the number of requests depends on projects and pages, not on instances.
    `project_scoped`: an error here concerns one project, so the next project is still read."""

    batch_size = 10_000
    project_scoped = True

    def __init__(self, clients: Any, wanted: Iterable[str]) -> None:
        s = clients.monitoring
        self.clients = clients
        self.settings = s
        self.queries = metric_queries(wanted, s.gpu_metric, s.gpu_metric_scale)

    def series_for(self, resources: list[Resource], start: datetime, end: datetime) -> dict[str, dict[str, Series]]:
        """{resource_id: {name: Series}} for instances of one or more projects (by Resource.account)."""
        by_project: dict[str, dict[str, str]] = {}
        for r in resources:
            instance_id = str(r.attrs.get("id", ""))
            if instance_id:
                by_project.setdefault(r.account, {})[instance_id] = r.resource_id
        out: dict[str, dict[str, Series]] = {}
        for project, ids in by_project.items():
            for q in self.queries:
                for instance_id, points in self._read(project, q, ids, start, end):
                    out.setdefault(ids[instance_id], {})[q.name] = Series(q.name, points)
        return out

    def _read(self, project: str, q: MetricQuery, ids: dict[str, str], start: datetime,
              end: datetime) -> Iterator[tuple[str, list[tuple[float, float]]]]:
        from google.cloud import monitoring_v3

        narrow = sorted(ids) if len(ids) <= self.settings.filter_max_ids else None
        request = monitoring_v3.ListTimeSeriesRequest(
            name=f"projects/{project}",
            filter=time_series_filter(q.metric_type, narrow),
            interval=monitoring_v3.TimeInterval(start_time=start, end_time=end),
            aggregation=monitoring_v3.Aggregation(
                alignment_period={"seconds": ALIGNMENT_SECONDS},
                per_series_aligner=monitoring_v3.Aggregation.Aligner[q.aligner],
                cross_series_reducer=monitoring_v3.Aggregation.Reducer[q.reducer],
                group_by_fields=list(GROUP_BY)),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            page_size=self.settings.page_size)
        try:
            pager = self.clients.metrics().list_time_series(request=request, timeout=self.settings.timeout_seconds)
            for ts in pager:  # the pager follows next_page_token
                instance_id = ts.resource.labels.get("instance_id", "")
                if instance_id in ids:  # a project-wide filter also returns the instances we do not judge
                    yield instance_id, points_of(ts, q.scale)
        except ToolError:  # DryRunViolation included
            raise
        except Exception as exc:  # noqa: BLE001 - API and transport errors become one line
            raise ToolError(f"cloud monitoring {q.metric_type}: {gcp_error(exc)}") from None
