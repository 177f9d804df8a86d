"""GCE utilization from Cloud Monitoring through the real google-cloud-monitoring client (gRPC, the
only transport it ships) against the fake MetricService on 127.0.0.1: idle and busy GPUs, the CPU
and network fallback, pagination, a failing project, the dry-run guard on the channel, a request
count that does not grow with the fleet, source selection and config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from costwarden.agent.config import ConfigError, Settings, load_settings
from costwarden.agent.demo.gcp import DEMO_PROJECT, OPS_AGENT_GPU, gcp_demo_estate
from costwarden.agent.engine.sweep import run_sweep
from costwarden.agent.reports.output import render_json
from costwarden.policies.loader import load_policies, load_policy_file
from tests.fakes.gce import FakeGce
from tests.fakes.monitoring import FakeMonitoring
from costwarden.tools.collectors import window
from costwarden.tools.errors import DryRunViolation
from costwarden.tools.gcp.monitoring import CPU_METRIC, NET_IN_METRIC, NET_OUT_METRIC, metric_queries, points_of, \
    time_series_filter
from costwarden.tools.gcp.session import GcpClients
from costwarden.tools.gcp.settings import GcpMonitoringSettings, GcpSettings

PROJECT = "acme-ml-platform"
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=timezone.utc)
DAYS = 8

POLICIES = """
policies:
  - name: gcp-idle
    resource: gcp.compute
    mode: approve
    filters:
      - type: idle-gpu
        lookback_days: 7
    actions: [stop]
    limits:
      protected_tags: {"costwarden-protect": "true"}
"""


@pytest.fixture
def gce():
    with FakeGce() as fake:
        yield fake


@pytest.fixture
def mon():
    with FakeMonitoring() as fake:
        yield fake


def hourly(value: float, *, per_hour: int = 2, wobble: float = 0.0) -> list[tuple[float, float]]:
    """DAYS of samples ending at NOW; `wobble` alternates +/- so means differ from raw samples."""
    t0 = (NOW - timedelta(days=DAYS)).timestamp()
    step = 3600 // per_hour
    return [(t0 + i * step, value + (wobble if i % 2 else -wobble)) for i in range(DAYS * 24 * per_hour)]


def add_vm(gce: FakeGce, mon: FakeMonitoring, name: str, machine_type: str, *, gpus: list[float] | None,
           cpu: float, net_bytes_per_sample: int, project: str = PROJECT, zone: str = "us-central1-a",
           labels: dict[str, str] | None = None) -> str:
    """A running VM and its Monitoring history: `gpus` one Ops Agent series per GPU (None: no agent)."""
    inst = gce.add_instance(project, zone, name, machine_type, labels=labels)
    res = {"instance_id": str(inst.id), "zone": zone}
    for n, pct in enumerate(gpus or []):
        mon.add_series(project, OPS_AGENT_GPU, res, hourly(pct, wobble=0.2),
                       metric_labels={"gpu_number": str(n), "model": "NVIDIA A100-SXM4-40GB", "uuid": f"GPU-{n}"})
    mon.add_series(project, CPU_METRIC, res, hourly(cpu), metric_labels={"instance_name": name})
    for metric in (NET_IN_METRIC, NET_OUT_METRIC):
        for lb in ("false", "true"):  # two series per instance, summed by the reducer
            mon.add_series(project, metric, res, hourly(net_bytes_per_sample),
                           metric_labels={"instance_name": name, "loadbalanced": lb}, int64=True)
    return f"{zone}/{name}"


def seed(gce: FakeGce, mon: FakeMonitoring, project: str = PROJECT) -> dict[str, str]:
    return {
        "idle": add_vm(gce, mon, "train-idle", "a2-highgpu-8g", gpus=[0.5] * 8, cpu=0.01, net_bytes_per_sample=1000,
                       project=project, labels={"env": "dev"}),
        # seven idle GPUs and one at 30%: the busiest GPU decides, so not idle (their mean, 4.2%, would be)
        "one-busy": add_vm(gce, mon, "serve-one-busy", "a2-highgpu-8g", gpus=[0.5] * 7 + [30.0], cpu=0.01,
                           net_bytes_per_sample=1000, project=project),
        "busy": add_vm(gce, mon, "serve-busy", "g2-standard-8", gpus=[70.0], cpu=0.4,
                       net_bytes_per_sample=10**8, project=project),
        "protected": add_vm(gce, mon, "eval-protected", "a3-highgpu-8g", gpus=[0.3] * 8, cpu=0.01,
                            net_bytes_per_sample=1000, project=project, labels={"costwarden-protect": "true"}),
        # no Ops Agent: judged on CPU and network, which are quiet here and busy on the next one
        "no-agent-idle": add_vm(gce, mon, "no-agent-idle", "a2-highgpu-1g", gpus=None, cpu=0.02,
                                net_bytes_per_sample=5000, project=project),
        "no-agent-busy": add_vm(gce, mon, "no-agent-busy", "a2-highgpu-1g", gpus=None, cpu=0.03,
                                net_bytes_per_sample=10**9, project=project),
        "web": add_vm(gce, mon, "web", "e2-standard-4", gpus=None, cpu=0.01, net_bytes_per_sample=1000,
                      project=project),
    }


def settings(tmp_path: Path, gce: FakeGce, mon: FakeMonitoring, projects=(PROJECT,), **mon_kw) -> Settings:
    return Settings(state_dir=tmp_path / "state",
                    gcp=GcpSettings(projects=list(projects), endpoint_url=gce.endpoint, utilization_source="monitoring",
                                    monitoring=GcpMonitoringSettings(endpoint_url=mon.endpoint, **mon_kw)))


def policies(tmp_path: Path):
    path = tmp_path / "gcp-policies.yml"
    path.write_text(POLICIES)
    return load_policy_file(path)


def sweep(tmp_path, gce, mon, **kw):
    return run_sweep(settings(tmp_path, gce, mon, **kw), policies(tmp_path), dry_run=True, now=NOW)


# -- sweeps -----------------------------------------------------------------------------------------

def test_idle_gpus_fire_and_busy_ones_do_not_with_one_request_per_metric(tmp_path, gce, mon, no_costwarden_env):
    ids = seed(gce, mon)
    result = sweep(tmp_path, gce, mon)
    assert result.errors == []
    found = {f.resource_id: f for f in result.findings}
    assert set(found) == {ids["idle"], ids["no-agent-idle"]}  # idle but protected: never a finding
    idle = found[ids["idle"]]
    assert idle.evidence["signal"] == "gpu_utilization" and idle.evidence["datapoints"] == 168
    assert idle.evidence["gpu_util_p95_pct"] == pytest.approx(0.5, abs=0.01)  # hourly means of 0.3/0.7 samples
    assert float(idle.monthly_waste_usd) == pytest.approx(29.38708 * 730, abs=0.01)
    fallback = found[ids["no-agent-idle"]]
    assert fallback.evidence["signal"].startswith("cpu_and_network")
    assert fallback.evidence["cpu_util_p95_pct"] == pytest.approx(2.0)  # the 0-1 fraction, in percent
    assert fallback.evidence["network_mb_per_hour"] == pytest.approx(4 * 2 * 5000 / 1e6)  # in+out, 2 series, 2/h
    assert sorted(a.args["instance_id"] for a in result.actions) == sorted([ids["idle"], ids["no-agent-idle"]])
    # one list_time_series per metric for the project; aligned hourly, reduced per instance
    lists = mon.list_requests
    assert [r.filter.split('"')[1] for r in lists] == [OPS_AGENT_GPU, CPU_METRIC, NET_IN_METRIC, NET_OUT_METRIC]
    gpu = lists[0]
    assert 'resource.type = "gce_instance"' in gpu.filter and gpu.name == f"projects/{PROJECT}"
    assert gpu.aggregation.alignment_period == timedelta(seconds=3600)
    assert (gpu.aggregation.per_series_aligner.name, gpu.aggregation.cross_series_reducer.name) == (
        "ALIGN_MEAN", "REDUCE_MAX")
    assert list(gpu.aggregation.group_by_fields) == ["resource.labels.instance_id"]
    assert (gpu.interval.start_time, gpu.interval.end_time) == window(NOW, 168)
    assert lists[2].aggregation.per_series_aligner.name == "ALIGN_SUM"
    assert mon.mutating_calls() == [] and gce.mutating_calls() == []
    assert result.api_calls.get("monitoring.GET ListTimeSeries") == 4
    # the audit JSON names GCP calls by service and method: as many as the fake received
    doc = json.loads(render_json(result))
    monitoring = [c for c in doc["api_calls"] if c["service"] == "monitoring"]
    assert monitoring == [{"service": "monitoring", "operation": "GET ListTimeSeries",
                           "count": len(mon.calls("ListTimeSeries"))}]
    assert {c["service"] for c in doc["api_calls"]} == {"compute", "monitoring"}


def test_pages_are_followed_and_give_the_same_answer(tmp_path, gce, mon, no_costwarden_env):
    ids = seed(gce, mon)
    result = sweep(tmp_path, gce, mon, page_size=2)
    assert {f.resource_id for f in result.findings} == {ids["idle"], ids["no-agent-idle"]}
    gpu_pages = [r for r in mon.list_requests if OPS_AGENT_GPU in r.filter]
    # 4 instances with GPU series (the 6 candidates minus the two without agent), 2 a page
    assert [r.page_token for r in gpu_pages] == ["", "2"] and {r.page_size for r in gpu_pages} == {2}
    assert len({r.filter for r in gpu_pages}) == 1  # the same query, paged, not a query per page of instances


def test_requests_do_not_grow_with_the_number_of_instances(tmp_path, gce, mon, no_costwarden_env):
    seed(gce, mon)
    small = sweep(tmp_path, gce, mon)
    for i in range(40):
        add_vm(gce, mon, f"extra-{i:02d}", "a2-highgpu-1g", gpus=[0.4], cpu=0.01, net_bytes_per_sample=1000,
               zone="us-east4-b")
    mon.list_requests.clear()
    large = sweep(tmp_path, gce, mon, filter_max_ids=10)  # 46 candidates: one project-wide filter per metric
    assert small.api_calls["monitoring.GET ListTimeSeries"] == large.api_calls["monitoring.GET ListTimeSeries"] == 4
    assert len(large.findings) == len(small.findings) + 40
    assert all("instance_id" not in r.filter for r in mon.list_requests)


def test_a_project_denied_monitoring_is_one_error_line_and_the_others_are_judged(tmp_path, gce, mon,
                                                                                  no_costwarden_env):
    ids = seed(gce, mon)
    seed(gce, mon, project="acme-forbidden")
    mon.forbidden.add("acme-forbidden")
    result = sweep(tmp_path, gce, mon, projects=("acme-forbidden", PROJECT))
    [err] = result.errors
    assert err.startswith(f"gcp acme-forbidden: GPU utilization: cloud monitoring {OPS_AGENT_GPU}: "
                          "403 PermissionDenied: Permission monitoring.timeSeries.list denied")
    assert "\n" not in err
    # nothing of the denied project is judged (not even on CPU); the other project is
    assert {(f.account, f.resource_id) for f in result.findings} == {
        (PROJECT, ids["idle"]), (PROJECT, ids["no-agent-idle"])}
    assert result.inventoried >= 14


def test_the_demo_reads_gce_from_cloud_monitoring_and_the_cluster_from_prometheus(tmp_path, no_costwarden_env):
    with gcp_demo_estate(days=DAYS, now=NOW) as demo:
        s = Settings(state_dir=tmp_path / "state", gcp=GcpSettings.model_validate(demo["gcp"]),
                     prometheus=demo["prometheus"], pricing={"overrides": demo["pricing"]["overrides"]})
        pack = [p for p in load_policies([]) if p.policy.resource in ("gcp.compute", "k8s.gpu-node")]
        result = run_sweep(s, pack, dry_run=True, now=NOW)
        gcp = {f.resource_id for f in result.findings if f.provider == "gcp"}
        k8s = {f.resource_id for f in result.findings if f.provider == "k8s"}
        assert gcp == {"us-central1-a/llm-pretrain-a100x8", "us-central1-b/vision-finetune"}
        assert k8s == {"gke-inference-prod-a100-pool-7f3c"}
        assert {r[1] for r in demo["monitoring_server"].calls()} == {DEMO_PROJECT}
        assert not any("Hostname" in q for q in demo["prometheus_server"].queries)  # VMs are not read there
        assert demo["monitoring_server"].mutating_calls() == []


# -- the dry-run guard -----------------------------------------------------------------------------

def test_dry_run_refuses_create_time_series_before_it_is_sent_and_live_mode_sends_it(gce, mon):
    dry = GcpClients(dry_run=True, projects=[PROJECT], endpoint_url=gce.endpoint,
                     monitoring=GcpMonitoringSettings(endpoint_url=mon.endpoint))
    with pytest.raises(DryRunViolation, match="monitoring.POST CreateTimeSeries"):
        dry.metrics().create_time_series(name=f"projects/{PROJECT}", time_series=[])
    assert mon.created == [] and mon.calls() == []  # it never left the process
    assert dry.call_log.refused == {"monitoring.POST CreateTimeSeries": 1} and dry.call_log.mutating() == {}
    live = GcpClients(dry_run=False, projects=[PROJECT], endpoint_url=gce.endpoint,
                      monitoring=GcpMonitoringSettings(endpoint_url=mon.endpoint))
    live.metrics().create_time_series(name=f"projects/{PROJECT}", time_series=[])
    assert len(mon.created) == 1 and live.call_log.mutating() == {"monitoring.POST CreateTimeSeries": 1}


# -- source selection and config -----------------------------------------------------------------------

def test_auto_uses_monitoring_only_where_it_is_safe(tmp_path, gce, mon, no_costwarden_env):
    ids = seed(gce, mon)
    local_only = Settings(state_dir=tmp_path / "s1", gcp=GcpSettings(projects=[PROJECT], endpoint_url=gce.endpoint))
    result = run_sweep(local_only, policies(tmp_path), dry_run=True, now=NOW)
    assert result.findings == [] and mon.calls() == []  # never the real API next to a local Compute API
    assert any("no utilization source" in w for w in result.warnings)
    auto = Settings(state_dir=tmp_path / "s2", gcp=GcpSettings(
        projects=[PROJECT], endpoint_url=gce.endpoint, monitoring={"endpoint_url": mon.endpoint}))
    assert ids["idle"] in {f.resource_id for f in run_sweep(auto, policies(tmp_path), dry_run=True, now=NOW).findings}


def test_config_errors_are_one_line(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("gcp:\n  projects: [acme-ml]\n  utilization_source: stackdriver\n")
    with pytest.raises(ConfigError, match="utilization_source") as exc:
        load_settings(cfg)
    assert "\n" not in str(exc.value)
    cfg.write_text("gcp:\n  projects: [acme-ml]\n  endpoint_url: http://127.0.0.1:8085\n  utilization_source: monitoring\n")
    with pytest.raises(ConfigError, match="monitoring.endpoint_url"):
        load_settings(cfg)
    cfg.write_text("gcp:\n  projects: [acme-ml]\n  monitoring:\n    gpu_metric: gpu utilization\n")
    with pytest.raises(ConfigError, match="gpu_metric"):
        load_settings(cfg)
    ok = load_settings(None)
    assert ok.gcp.utilization_source == "auto" and ok.gcp.monitoring.gpu_metric == OPS_AGENT_GPU


# -- pure parts ----------------------------------------------------------------------------------------

def test_filters_queries_and_point_order():
    assert time_series_filter("m/x") == 'metric.type = "m/x" AND resource.type = "gce_instance"'
    narrowed = time_series_filter("m/x", ["22", "11", "not-an-id"])
    assert narrowed.endswith('resource.labels.instance_id = monitoring.regex.full_match("11|22")')
    qs = metric_queries({"cpu_utilization", "gpu_utilization", "disk"}, "custom.googleapis.com/gpu", 100.0)
    assert [(q.name, q.scale) for q in qs] == [("gpu_utilization", 100.0), ("cpu_utilization", 100.0)]
    from google.cloud import monitoring_v3

    ts = monitoring_v3.TimeSeries(points=[
        {"interval": {"end_time": datetime(2025, 1, 1, 2, tzinfo=timezone.utc)}, "value": {"int64_value": 7}},
        {"interval": {"end_time": datetime(2025, 1, 1, 1, tzinfo=timezone.utc)}, "value": {"double_value": 0.5}}])
    assert points_of(ts, 2.0) == [(datetime(2025, 1, 1, 1, tzinfo=timezone.utc).timestamp(), 1.0),
                                  (datetime(2025, 1, 1, 2, tzinfo=timezone.utc).timestamp(), 14.0)]


def test_monitoring_sdk_is_not_imported_unless_it_is_the_source(tmp_path):
    code = """
import sys
from costwarden.agent.config import Settings
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policies
run_sweep(Settings(state_dir=sys.argv[1]), [p for p in load_policies([]) if p.policy.resource == "gcp.compute"],
          dry_run=True)
assert "google.cloud.monitoring_v3" not in sys.modules and "grpc" not in sys.modules, "imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "state")], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
