"""GCP through the real google-cloud-compute client (REST transport, anonymous credentials) against
the fake Compute API on 127.0.0.1: paginated inventory, the dry-run guard at the transport, guarded
actions verified by reading back, a failing project, and whole sweeps with DCGM series from the
fake Prometheus."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from costwarden.agent.config import ConfigError, Settings, load_settings
from costwarden.agent.demo.gcp import DemoNode, DemoVm, seed_dcgm
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.loader import load_policy_file
from tests.fakes.gce import FakeGce
from tests.fakes.prometheus import FakePrometheus
from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.gcp.compute import list_instances, set_labels, set_machine_type, start_instance, stop_instance
from costwarden.tools.gcp.session import GcpClients
from costwarden.tools.gcp.settings import GcpSettings
from costwarden.tools.prometheus import PrometheusSettings

PROJECT = "acme-ml-platform"
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=timezone.utc)

VMS = [
    DemoVm("us-central1-a", "train-idle", "a2-highgpu-8g", {"team": "research", "env": "dev"}, "idle"),
    DemoVm("us-central1-b", "serve-busy", "g2-standard-8", {"team": "platform", "env": "dev"}, "busy"),
    DemoVm("europe-west4-a", "eval-protected", "a3-highgpu-8g", {"costwarden-protect": "true"}, "idle"),
    DemoVm("us-central1-c", "stopped-one", "a2-highgpu-1g", {}, None, "TERMINATED"),
    DemoVm("us-central1-a", "web", "e2-standard-4", {}, None),
]

POLICIES = """
policies:
  - name: gcp-idle
    resource: gcp.compute
    mode: {mode}
    filters:
      - type: idle-gpu
        lookback_days: 7
    actions: [stop]
    limits:
      max_monthly_usd_per_auto_action: 50000
      protected_tags: {{"costwarden-protect": "true"}}
  - name: k8s-idle
    resource: k8s.gpu-node
    mode: report
    filters:
      - type: idle-gpu
        lookback_days: 7
"""


@pytest.fixture
def gce():
    with FakeGce() as fake:
        yield fake


@pytest.fixture
def prom():
    with FakePrometheus() as fake:
        yield fake


def seed(gce: FakeGce, project: str = PROJECT) -> None:
    for vm in VMS:
        gce.add_instance(project, vm.zone, vm.name, vm.machine_type, status=vm.status, labels=vm.labels)


def clients(gce: FakeGce, *, dry_run: bool, **kw) -> GcpClients:
    return GcpClients(dry_run=dry_run, projects=[PROJECT], endpoint_url=gce.endpoint, **kw)


def sweep_settings(tmp_path: Path, gce: FakeGce, prom: FakePrometheus, projects=(PROJECT,), **prom_kw) -> Settings:
    return Settings(state_dir=tmp_path / "state",
                    gcp=GcpSettings(projects=list(projects), endpoint_url=gce.endpoint),
                    prometheus=PrometheusSettings(url=prom.endpoint, gcp_instance_label="Hostname",
                                                  node_label="kubernetes_node", cluster="gke-prod", **prom_kw))


def policies(tmp_path: Path, mode: str = "approve"):
    path = tmp_path / "gcp-policies.yml"
    path.write_text(POLICIES.format(mode=mode))
    return load_policy_file(path)


# -- inventory -------------------------------------------------------------------------------------

def test_inventory_follows_page_tokens_across_zones_into_neutral_resources(gce):
    seed(gce)
    gce.add_instance(PROJECT, "us-east4-a", "n1-with-t4", "n1-standard-8", accelerators=[("nvidia-tesla-t4", 2)])
    found = {r.resource_id: r for r in list_instances(clients(gce, dry_run=True, page_size=2), PROJECT)}
    assert len(found) == 6
    assert gce.calls() == [("GET", f"/compute/v1/projects/{PROJECT}/aggregated/instances")] * 3  # 6 rows, 2 a page
    r = found["us-central1-a/train-idle"]
    assert (r.provider, r.account, r.region, r.resource_type, r.kind, r.state) == (
        "gcp", PROJECT, "us-central1", "gcp.compute", "a2-highgpu-8g", "running")
    assert r.tags == {"team": "research", "env": "dev"}
    assert r.attrs["accelerators"] == [{"type": "nvidia-tesla-a100", "count": 8}] and r.attrs["gpu_count"] == 8
    assert found["us-central1-c/stopped-one"].state == "terminated"
    assert found["us-east4-a/n1-with-t4"].attrs["gpu_count"] == 2
    assert found["us-central1-a/web"].attrs["gpu_count"] == 0


def test_idle_gpu_wants_gpu_machine_families_and_attached_accelerators(gce):
    from costwarden.policies.detectors.idle_gpu import IdleGpu, IdleGpuParams

    seed(gce)
    gce.add_instance(PROJECT, "us-east4-a", "n1-with-t4", "n1-standard-8", accelerators=[("nvidia-tesla-t4", 1)])
    det = IdleGpu(IdleGpuParams())
    wanted = {r.resource_id for r in list_instances(clients(gce, dry_run=True), PROJECT) if det.wants(r)}
    assert wanted == {"us-central1-a/train-idle", "us-central1-b/serve-busy", "europe-west4-a/eval-protected",
                      "us-east4-a/n1-with-t4"}  # not the stopped A2, not the e2 web server


# -- the dry-run guard -------------------------------------------------------------------------------

def test_dry_run_transport_refuses_a_mutating_call_before_it_is_sent(gce):
    seed(gce)
    c = clients(gce, dry_run=True)
    with pytest.raises(DryRunViolation, match="compute.POST instances/stop"):
        stop_instance(c, account=PROJECT, region="us-central1", instance_id="us-central1-a/train-idle")
    # the SDK object itself is guarded, not just our wrapper functions
    with pytest.raises(DryRunViolation):
        c.instances().start(project=PROJECT, zone="us-central1-c", instance="stopped-one")
    assert gce.mutating_calls() == []  # nothing but GETs reached the "cloud"
    assert ("GET", f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/instances/train-idle") in gce.calls()
    assert c.call_log.refused == {"compute.POST instances/stop": 1, "compute.POST instances/start": 1}
    assert c.call_log.mutating() == {}
    assert gce.instance(PROJECT, "us-central1-a", "train-idle").status == "RUNNING"


# -- guarded actions ---------------------------------------------------------------------------------

def test_live_stop_polls_the_zone_operation_and_reads_the_instance_back(gce):
    seed(gce)
    c = clients(gce, dry_run=False)
    out = stop_instance(c, account=PROJECT, region="us-central1", instance_id="us-central1-a/train-idle")
    assert out.ok and out.after["state"] == "terminated"
    assert gce.instance(PROJECT, "us-central1-a", "train-idle").status == "TERMINATED"
    base = f"/compute/v1/projects/{PROJECT}/zones/us-central1-a"
    assert gce.mutating_calls() == [("POST", f"{base}/instances/train-idle/stop")]
    assert ("GET", f"{base}/operations/operation-000001-stop") in gce.calls()  # same endpoint, not the real API
    gce.clear_calls()
    again = stop_instance(c, account=PROJECT, region="us-central1", instance_id="us-central1-a/train-idle")
    assert again.ok and "nothing to do" in again.detail and gce.mutating_calls() == []


def test_start_set_machine_type_and_set_labels_verify_the_new_state(gce):
    seed(gce)
    c = clients(gce, dry_run=False)
    vm = dict(account=PROJECT, region="us-central1", instance_id="us-central1-a/train-idle")
    refused = set_machine_type(c, **vm, machine_type="a2-highgpu-1g")  # running: refused before any call
    assert not refused.ok and "stop it" in refused.detail and gce.mutating_calls() == []
    assert stop_instance(c, **vm).ok
    resized = set_machine_type(c, **vm, machine_type="a2-highgpu-1g")
    assert resized.ok and resized.after["machine_type"] == "a2-highgpu-1g"
    assert gce.instance(PROJECT, "us-central1-a", "train-idle").machine_type == "a2-highgpu-1g"
    started = start_instance(c, **vm)
    assert started.ok and gce.instance(PROJECT, "us-central1-a", "train-idle").status == "RUNNING"
    labelled = set_labels(c, **vm, labels={"costwarden-stop-after": "2025-07-07"})
    assert labelled.ok and gce.instance(PROJECT, "us-central1-a", "train-idle").labels == {
        "team": "research", "env": "dev", "costwarden-stop-after": "2025-07-07"}  # merged, none lost
    with pytest.raises(ToolError, match="lowercase"):
        set_labels(c, **vm, labels={"Owner": "Bob"})
    with pytest.raises(ToolError, match="not found"):
        stop_instance(c, account=PROJECT, region="us-central1", instance_id="us-central1-a/nope")
    with pytest.raises(ToolError, match="<zone>/<name>"):
        stop_instance(c, account=PROJECT, region="us-central1", instance_id="train-idle")


# -- sweeps ------------------------------------------------------------------------------------------

def test_dry_run_sweep_finds_idle_gpus_on_gcp_and_k8s_and_sends_no_mutating_request(tmp_path, gce, prom,
                                                                                     no_costwarden_env):
    seed(gce)
    nodes = [DemoNode("gke-prod-a100-1.internal", 8, "NVIDIA A100-SXM4-80GB", 0),
             DemoNode("gke-prod-a100-2.internal", 8, "NVIDIA A100-SXM4-80GB", 1),  # one busy GPU of eight
             DemoNode("gke-prod-a100-1Xinternal", 1, "NVIDIA L4", 1)]  # would match an unescaped '.'
    seed_dcgm(prom, now=NOW, days=8, vms=VMS, nodes=nodes)
    settings = sweep_settings(tmp_path, gce, prom)
    settings.pricing.overrides["gpu:NVIDIA A100-SXM4-80GB"] = 5.0
    result = run_sweep(settings, policies(tmp_path), dry_run=True, now=NOW)

    assert result.errors == []
    found = {f.resource_id: f for f in result.findings}
    assert set(found) == {"us-central1-a/train-idle", "gke-prod-a100-1.internal"}
    vm = found["us-central1-a/train-idle"]
    assert (vm.provider, vm.account, vm.region, vm.resource_type) == ("gcp", PROJECT, "us-central1", "gcp.compute")
    assert vm.evidence["signal"] == "gpu_utilization" and vm.evidence["gpu_util_p95_pct"] < 5
    assert vm.evidence["datapoints"] == 168 and float(vm.monthly_waste_usd) == pytest.approx(29.38708 * 730, abs=0.01)
    node = found["gke-prod-a100-1.internal"]
    assert (node.provider, node.account, node.resource_type) == ("k8s", "gke-prod", "k8s.gpu-node")
    assert node.evidence["instance_type"] == "8x NVIDIA A100-SXM4-80GB"
    assert float(node.monthly_waste_usd) == pytest.approx(8 * 5.0 * 730)
    [action] = result.actions  # the k8s policy is report-only
    assert (action.tool, action.status) == ("gcp.compute.stop_instance", "dry_run")
    assert action.args == {"account": PROJECT, "region": "us-central1", "instance_id": "us-central1-a/train-idle"}
    assert gce.mutating_calls() == [] and gce.instance(PROJECT, "us-central1-a", "train-idle").status == "RUNNING"
    # GPU series were fetched in batches, not one query per instance or node
    ranges = [q for q in prom.queries if "avg_over_time" in q]
    assert len(ranges) == 2  # one for the project's candidates, one for the cluster's nodes


def test_live_auto_sweep_stops_the_idle_instance_and_only_it(tmp_path, gce, prom, no_costwarden_env):
    seed(gce)
    seed_dcgm(prom, now=NOW, days=8, vms=VMS, nodes=[])
    result = run_sweep(sweep_settings(tmp_path, gce, prom), policies(tmp_path, mode="auto"), dry_run=False, now=NOW)
    [action] = result.actions
    assert (action.tool, action.decision, action.status) == ("gcp.compute.stop_instance", "auto", "done")
    assert gce.instance(PROJECT, "us-central1-a", "train-idle").status == "TERMINATED"
    assert gce.instance(PROJECT, "us-central1-b", "serve-busy").status == "RUNNING"
    assert gce.instance(PROJECT, "europe-west4-a", "eval-protected").status == "RUNNING"
    assert [c for c in gce.mutating_calls()] == [
        ("POST", f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/instances/train-idle/stop")]


def test_one_failing_project_is_reported_in_one_line_and_the_others_go_on(tmp_path, gce, prom, no_costwarden_env):
    seed(gce)
    seed(gce, "acme-forbidden")
    gce.forbidden.add("acme-forbidden")
    seed_dcgm(prom, now=NOW, days=8, vms=VMS, nodes=[])
    settings = sweep_settings(tmp_path, gce, prom, projects=("acme-forbidden", PROJECT))
    result = run_sweep(settings, policies(tmp_path), dry_run=True, now=NOW)
    assert [f.resource_id for f in result.findings] == ["us-central1-a/train-idle"]
    [err] = result.errors
    assert err.startswith("gcp acme-forbidden: 403 Forbidden: Required 'compute.instances.list' permission")
    assert "\n" not in err and "http://" not in err


def test_prometheus_down_is_an_error_line_and_nothing_is_judged(tmp_path, gce, prom, no_costwarden_env):
    seed(gce)
    prom.failing = True
    result = run_sweep(sweep_settings(tmp_path, gce, prom), policies(tmp_path), dry_run=True, now=NOW)
    assert result.findings == []
    assert any(e.startswith("gcp acme-ml-platform: GPU utilization: prometheus /api/v1/query_range: HTTP 503")
               for e in result.errors)
    assert any(e.startswith("k8s gke-prod: prometheus /api/v1/query: HTTP 503") for e in result.errors)


# -- config ------------------------------------------------------------------------------------------

def test_gcp_and_prometheus_config_errors_are_one_line(tmp_path, no_costwarden_env):
    cfg = tmp_path / "c.yml"
    cfg.write_text("gcp:\n  projects: [Bad_Project]\n")
    with pytest.raises(ConfigError, match="not a GCP project id") as exc:
        load_settings(cfg)
    assert "line 2" in str(exc.value) or "gcp.projects" in str(exc.value)
    cfg.write_text("gcp:\n  projects: [acme-ml]\n  endpoint_url: 127.0.0.1:8085\n")
    with pytest.raises(ConfigError, match="explicit scheme"):
        load_settings(cfg)
    cfg.write_text("prometheus:\n  url: http://p:9090\n  selector: cluster=prod\n")
    with pytest.raises(ConfigError, match="label matchers"):
        load_settings(cfg)
    ok = load_settings(None)
    assert ok.gcp.projects == [] and ok.prometheus.url is None


def test_nothing_google_is_imported_when_gcp_is_not_configured(tmp_path):
    code = """
import sys
from datetime import datetime, timezone
from costwarden.agent.config import Settings
from costwarden.agent.engine.context import Providers
from costwarden.tools.collectors import CollectPlan, CollectReport, Scope, get_collector
spec = get_collector("gcp.compute")
plan = CollectPlan(wants=lambda r: True, metrics=[], lookback_hours=24, now=datetime.now(timezone.utc))
report = CollectReport()
obs = list(spec.collect(Providers(Settings(), dry_run=True).clients_for("gcp"), Scope(["us-east-1"]), plan, report))
k8s = get_collector("k8s.gpu-node")
obs += list(k8s.collect(k8s.source(Settings()), Scope(["us-east-1"]), plan, report))
assert obs == [] and report.errors == [] and report.inventoried == 0, (obs, report)
assert "google.cloud.compute_v1" not in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_gcp_prices_come_from_the_shipped_table_with_source_and_k8s_nodes_from_config():
    from costwarden.tools.pricing import PriceBook

    book = PriceBook({"gpu:NVIDIA L4": 0.85})
    price, source = book.hourly("gcp", "us-central1", "a3-highgpu-8g")
    assert float(price) == pytest.approx(88.49) and "Google Cloud" in source and "as of 20" in source
    price, source = book.hourly("gcp", "europe-west4", "g2-standard-8")
    assert float(price) == pytest.approx(0.853624) and "us-central1 figure; no europe-west4 table" in source
    assert book.hourly("gcp", "us-central1", "n1-standard-8") == (None, "unpriced")  # never a silent $0
    assert float(book.hourly("k8s", "", "4x NVIDIA L4")[0]) == pytest.approx(3.4)
    price, source = book.hourly("k8s", "", "8x NVIDIA H100 80GB HBM3")
    assert price is None and "gpu:NVIDIA H100 80GB HBM3" in source
