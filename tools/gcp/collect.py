"""Read-only collection for gcp.compute policies: per project, one paginated aggregated list (every
zone), then utilization series for the candidates in batches, from Cloud Monitoring or from
Prometheus (`gcp.utilization_source`). One project failing (no permission, API not enabled) is
reported in CollectReport.errors and the other projects go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from costwarden.state.domain import Observation, Resource
from costwarden.tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector
from costwarden.tools.errors import ToolError
from costwarden.tools.gcp.session import gcp_error
from costwarden.tools.collectors import batched, window

MAX_BATCH = 100
UTILIZATION_METRICS = frozenset({"gpu_utilization", "cpu_utilization", "network_in", "network_out"})


def utilization_source(clients: Any, plan: CollectPlan, report: CollectReport) -> Any:
    """The source of the plan's series, or None (with a warning saying why) when there is none.

    auto: Prometheus when it is set up for GCE instances (prometheus.gcp_instance_label), else
    Cloud Monitoring, which every project has; but never the real Monitoring API next to a local
    Compute API (tests, the demo), which would send anonymous requests to Google."""
    wanted = {m.name for m in plan.metrics} & UTILIZATION_METRICS
    if not wanted:
        return None
    choice = getattr(clients, "utilization_source", "auto")
    if choice == "prometheus" or (choice == "auto" and clients.utilization is not None):
        if clients.utilization is None:
            report.warnings.append("gcp: no GPU utilization source configured (prometheus.gcp_instance_label); "
                                   "gcp.compute instances cannot be judged idle")
        return clients.utilization
    if clients.endpoint_url and not clients.monitoring.endpoint_url:
        report.warnings.append("gcp: no utilization source: gcp.endpoint_url is a custom Compute API and neither "
                               "prometheus.gcp_instance_label nor gcp.monitoring.endpoint_url is set; "
                               "gcp.compute instances cannot be judged idle")
        return None
    from costwarden.tools.gcp.monitoring import MonitoringUtilization

    return MonitoringUtilization(clients, wanted)


def collect_gce(clients: Any, scope: Scope, plan: CollectPlan, report: CollectReport) -> Iterator[Observation]:
    """Nothing at all (no SDK import, no call) when no project is configured."""
    if clients is None or not clients.projects:
        return
    start, end = window(plan.now, plan.lookback_hours)
    source = utilization_source(clients, plan, report)
    # Cloud Monitoring takes a whole project's candidates in one batch: one filter per metric per project.
    size = getattr(source, "batch_size", MAX_BATCH)
    from costwarden.tools.gcp.compute import list_instances

    for project in clients.projects:
        try:
            def candidates(project: str = project) -> Iterator[Resource]:
                for r in list_instances(clients, project):
                    report.inventoried += 1
                    if plan.wants(r):
                        report.candidates += 1
                        yield r

            for batch in batched(candidates(), size):
                series: dict[str, Any] = {}
                if source is not None:
                    try:
                        series = source.series_for(batch, start, end)
                    except ToolError as exc:  # metrics down: inventory still counts, nothing is judged
                        report.errors.append(f"gcp {project}: GPU utilization: {exc}")
                        if not getattr(source, "project_scoped", False):
                            source = None  # Prometheus is down for every project; Monitoring failed for this one
                for r in batch:
                    yield Observation(r, series.get(r.resource_id, {}))
        except Exception as exc:  # noqa: BLE001 - one project's failure must not end the sweep
            report.errors.append(f"gcp {project}: {gcp_error(exc)}")


# aggregatedList needs compute.instances.list; the series need the filters' monitoring.timeSeries.list
register_collector(CollectorSpec("gcp.compute", "gcp", collect_gce, permissions=("compute.instances.list",)))
