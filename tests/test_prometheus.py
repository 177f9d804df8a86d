"""Prometheus/DCGM as a utilization source, against the fake Prometheus HTTP API (which evaluates
the PromQL subset we send): node inventory, busiest-GPU hourly series, batching, regex escaping,
the PROF metric's 0-1 scale, and errors as one line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.idle_gpu import IdleGpu, IdleGpuParams
from costwarden.state.domain import Observation
from tests.fakes.prometheus import FakePrometheus
from costwarden.tools.errors import ToolError
from costwarden.tools.prometheus import (GpuUtilization, PrometheusClient, PrometheusSettings, gpu_nodes, promql_string,
                              regex_alternatives, window)

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=timezone.utc)
HOURS = 7 * 24


@pytest.fixture
def prom():
    with FakePrometheus() as fake:
        yield fake


def add_node(prom: FakePrometheus, node: str, gpu_values: list[float], *, model: str = "NVIDIA H100 80GB HBM3",
             metric: str = "DCGM_FI_DEV_GPU_UTIL", hours: int = HOURS + 24) -> None:
    """One series per GPU, a sample every 15 minutes, constant value per GPU."""
    start = NOW - timedelta(hours=hours)
    for gpu, value in enumerate(gpu_values):
        samples = [((start + timedelta(minutes=15 * i)).timestamp(), value) for i in range(hours * 4)]
        prom.add_series(metric, {"gpu": str(gpu), "modelName": model, "node": node, "pod": f"train-{node}"}, samples)


def client(prom: FakePrometheus, **kw) -> PrometheusClient:
    return PrometheusClient(PrometheusSettings(url=prom.endpoint, node_label="node", cluster="c1", **kw))


def detect(obs: Observation):
    ctx = DetectContext(policy="p", run_id="r", now=NOW, price_of=lambda r: Price(None, "unpriced"))
    return IdleGpu(IdleGpuParams()).detect(obs, ctx)


def test_nodes_are_inventoried_with_gpu_count_and_model_in_one_query(prom):
    add_node(prom, "node-a", [0.3] * 8)
    add_node(prom, "node-b", [0.2], model="NVIDIA L4")
    prom.add_series("DCGM_FI_DEV_GPU_UTIL", {"gpu": "0", "Hostname": "a-vm"}, [(NOW.timestamp() - 60, 1.0)])  # no node
    nodes = gpu_nodes(client(prom), NOW, HOURS)
    assert [(n.resource_id, n.kind, n.attrs["gpu_count"]) for n in nodes] == [
        ("node-a", "8x NVIDIA H100 80GB HBM3", 8), ("node-b", "1x NVIDIA L4", 1)]
    assert all((n.provider, n.account, n.resource_type, n.state) == ("k8s", "c1", "k8s.gpu-node", "running")
               for n in nodes)
    assert len(prom.queries) == 1


def test_idle_and_busy_nodes_one_busy_gpu_is_enough_to_be_busy(prom):
    add_node(prom, "idle", [0.4] * 8)
    add_node(prom, "one-busy", [0.4] * 7 + [87.0])
    c = client(prom)
    nodes = gpu_nodes(c, NOW, HOURS)
    start, end = window(NOW, HOURS)
    series = GpuUtilization(c, "node", lambda r: r.resource_id).series_for(nodes, start, end)
    assert len(series["idle"]["gpu_utilization"].points) == HOURS  # one point per hour of the lookback
    assert series["one-busy"]["gpu_utilization"].values[0] == pytest.approx(87.0)  # the busiest GPU, not the mean
    by_id = {n.resource_id: n for n in nodes}
    idle = detect(Observation(by_id["idle"], series["idle"]))
    assert idle is not None and idle.evidence["gpu_util_p95_pct"] == pytest.approx(0.4)
    assert detect(Observation(by_id["one-busy"], series["one-busy"])) is None


def test_prof_metric_is_scaled_to_percent(prom):
    add_node(prom, "n1", [0.62], metric="DCGM_FI_PROF_GR_ENGINE_ACTIVE")  # 0-1 ratio
    c = client(prom, gpu_metric="DCGM_FI_PROF_GR_ENGINE_ACTIVE")
    nodes = gpu_nodes(c, NOW, HOURS)
    series = GpuUtilization(c, "node", lambda r: r.resource_id).series_for(nodes, *window(NOW, HOURS))
    values = series["n1"]["gpu_utilization"].values
    assert len(values) == HOURS and values == pytest.approx([62.0] * HOURS)


def test_series_are_fetched_in_batches_with_exact_escaped_matches(prom):
    names = [f"ip-10-0-0-{i}.ec2.internal" for i in range(5)]
    for n in names:
        add_node(prom, n, [1.0])
    add_node(prom, "ip-10-0-0-0Xec2Xinternal", [99.0])  # an unescaped '.' would let this one in
    c = client(prom, batch_size=2)
    nodes = [n for n in gpu_nodes(c, NOW, HOURS) if n.resource_id in names]
    prom.queries.clear()
    series = GpuUtilization(c, "node", lambda r: r.resource_id).series_for(nodes, *window(NOW, HOURS))
    assert sorted(series) == sorted(names) and len(prom.queries) == 3  # 5 nodes, 2 a query
    rows = c.query_range(f'DCGM_FI_DEV_GPU_UTIL{{node=~{promql_string(regex_alternatives(["ip-10-0-0-0.ec2.internal"]))}}}',
                         NOW - timedelta(hours=1), NOW, 3600)
    assert {r["metric"]["node"] for r in rows} == {"ip-10-0-0-0.ec2.internal"}


def test_errors_are_one_line(prom):
    c = client(prom)
    with pytest.raises(ToolError, match=r"^prometheus /api/v1/query: HTTP 400: parse error"):
        c.query("count by (node) (", NOW)
    prom.failing = True
    with pytest.raises(ToolError, match=r"HTTP 503: fake: service unavailable$"):
        c.query("up", NOW)
    prom.stop()
    with pytest.raises(ToolError, match=r"^prometheus http://127\.0\.0\.1:\d+: "):
        c.query("up", NOW)


def test_bearer_token_is_secret_in_settings():
    s = PrometheusSettings(url="http://p:9090", bearer_token="s3cret")
    assert "s3cret" not in repr(s) and "s3cret" not in s.model_dump_json()
