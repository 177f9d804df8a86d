"""Read-only collection for gcp.compute policies: per project, one paginated aggregated list (every
zone), then GPU series for the candidates in batches. One project failing (no permission, API not
enabled) is reported in CollectReport.errors and the other projects go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from state.domain import Observation, Resource
from tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector
from tools.errors import ToolError
from tools.gcp.session import gcp_error
from tools.collectors import batched, window

MAX_BATCH = 100


def collect_gce(clients: Any, scope: Scope, plan: CollectPlan, report: CollectReport) -> Iterator[Observation]:
    """Nothing at all (no SDK import, no call) when no project is configured."""
    if clients is None or not clients.projects:
        return
    start, end = window(plan.now, plan.lookback_hours)
    wants_gpu = any(m.name == "gpu_utilization" for m in plan.metrics)
    source = clients.utilization if wants_gpu else None
    if wants_gpu and source is None:
        report.warnings.append("gcp: no GPU utilization source configured (prometheus.gcp_instance_label); "
                               "gcp.compute instances cannot be judged idle")
    from tools.gcp.compute import list_instances

    for project in clients.projects:
        try:
            def candidates(project: str = project) -> Iterator[Resource]:
                for r in list_instances(clients, project):
                    report.inventoried += 1
                    if plan.wants(r):
                        report.candidates += 1
                        yield r

            for batch in batched(candidates(), MAX_BATCH):
                series: dict[str, Any] = {}
                if source is not None:
                    try:
                        series = source.series_for(batch, start, end)
                    except ToolError as exc:  # metrics down: inventory still counts, nothing is judged
                        report.errors.append(f"gcp {project}: GPU utilization: {exc}")
                        source = None
                for r in batch:
                    yield Observation(r, series.get(r.resource_id, {}))
        except Exception as exc:  # noqa: BLE001 - one project's failure must not end the sweep
            report.errors.append(f"gcp {project}: {gcp_error(exc)}")


register_collector(CollectorSpec("gcp.compute", "gcp", collect_gce))
