"""Missing is not zero: a resource without the metric a detector needs is "insufficient data",
never idle and never silently dropped, in the sweep result and in every output form."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
from botocore.config import Config

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.demo.estate import DEMO_AMI
from costwarden.agent.engine.nodes.detect import no_findings_because
from costwarden.agent.engine.sweep import run_sweep
from costwarden.agent.reports.output import render_html, render_json, render_markdown, render_table
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.idle_gpu import IdleGpu, IdleGpuParams
from costwarden.policies.detectors.offhours_idle import OffHoursIdle, OffHoursIdleParams
from costwarden.policies.loader import load_policy_file
from costwarden.state.domain import Observation, Resource, Series
from tests.fakes.moto_server import mutating

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def resource() -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.ec2", "i-0abc", kind="p4d.24xlarge", state="running",
                    tags={"Name": "trainer"})


def series(values: list[float]) -> Series:
    return Series("s", [(i * 3600.0, v) for i, v in enumerate(values)])


def ctx() -> DetectContext:
    return DetectContext("p", "run_1", NOW, lambda r: Price(Decimal("21.96"), "test table"))


def test_cpu_without_network_is_insufficient_data_not_idle():
    c = ctx()
    obs = Observation(resource(), {"cpu_utilization": series([1.0] * 168)})
    assert IdleGpu(IdleGpuParams()).detect(obs, c) is None
    [gap] = c.insufficient
    assert gap["resource_id"] == "i-0abc" and gap["detector"] == "idle-gpu" and gap["name"] == "trainer"
    assert gap["metric"] == "gpu_utilization, network_in, network_out"
    assert gap["coverage"] == 0.0 and gap["required_coverage"] == 0.8
    assert gap["coverage_by_metric"]["cpu_utilization"] == 1.0
    assert "network_in missing" in gap["reason"] and "80%" in gap["reason"]


def test_thin_network_is_insufficient_with_its_coverage():
    c = ctx()
    obs = Observation(resource(), {"cpu_utilization": series([1.0] * 168), "network_in": series([0.0] * 168),
                                   "network_out": series([0.0] * 84)})
    assert IdleGpu(IdleGpuParams()).detect(obs, c) is None
    [gap] = c.insufficient
    assert gap["metric"] == "gpu_utilization, network_out" and gap["coverage"] == 0.0
    assert gap["coverage_by_metric"]["network_out"] == 0.5 and "network_out at 50% coverage" in gap["reason"]


def test_zeros_are_data_and_a_busy_cpu_needs_no_network():
    c = ctx()
    zeros = {"cpu_utilization": series([1.0] * 168), "network_in": series([0.0] * 168),
             "network_out": series([0.0] * 168)}
    f = IdleGpu(IdleGpuParams()).detect(Observation(resource(), zeros), c)
    assert f is not None and f.evidence["network_mb_per_hour"] == 0.0 and c.insufficient == []
    busy = Observation(resource(), {"cpu_utilization": series([60.0] * 168)})
    assert IdleGpu(IdleGpuParams()).detect(busy, c) is None and c.insufficient == []  # judged: busy


def test_no_metric_at_all_is_insufficient_for_off_hours_too():
    c = ctx()
    assert OffHoursIdle(OffHoursIdleParams()).detect(Observation(resource(), {}), c) is None
    [gap] = c.insufficient
    assert gap["detector"] == "off-hours-idle" and gap["metric"] == "gpu_utilization, cpu_utilization"


def test_progress_says_why_candidates_gave_no_findings():
    gaps = [{"resource_id": "i-1", "metric": "network_in, network_out", "required_coverage": 0.8},
            {"resource_id": "i-2", "metric": "network_in", "required_coverage": 0.8}]
    text = no_findings_because(3, 0, 0, gaps)
    assert "2 without enough data (network_in, network_out under 80% coverage)" in text
    assert "1 judged and within the thresholds" in text
    assert no_findings_because(2, 2, 0, []) == "" and no_findings_because(0, 0, 0, []) == ""


POLICY = """
policies:
  - name: idle-gpus
    resource: aws.ec2
    mode: report
    filters:
      - type: idle-gpu
        lookback_days: 3
"""


def test_sweep_reports_a_gpu_box_with_cpu_and_no_network_as_insufficient(aws, state_dir, tmp_path,
                                                                          no_costwarden_env):
    cfg = Config(disable_request_compression=True)  # moto's server cannot read gzip PutMetricData bodies
    ec2 = boto3.client("ec2", region_name="us-east-1")
    cw = boto3.client("cloudwatch", region_name="us-east-1", config=cfg)
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    ids = {}
    for name in ("cpu-only", "quiet"):
        ids[name] = ec2.run_instances(ImageId=DEMO_AMI, InstanceType="g5.xlarge", MinCount=1, MaxCount=1,
                                      TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                          {"Key": "Name", "Value": name}]}])["Instances"][0]["InstanceId"]
        metrics = [("CPUUtilization", 1.0, "Percent")]
        if name == "quiet":
            metrics += [("NetworkIn", 1000.0, "Bytes"), ("NetworkOut", 1000.0, "Bytes")]
        for metric, value, unit in metrics:
            cw.put_metric_data(Namespace="AWS/EC2", MetricData=[
                {"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": ids[name]}],
                 "Timestamp": now - timedelta(hours=h + 1), "Value": value, "Unit": unit} for h in range(72)])
    aws.clear_calls()
    f = tmp_path / "idle.yml"
    f.write_text(POLICY)
    lines: list[str] = []
    result = run_sweep(Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"])),
                       load_policy_file(f), dry_run=True, progress=lines.append)

    assert result.errors == [] and mutating(aws.calls) == []
    assert [x.resource_id for x in result.findings] == [ids["quiet"]]  # judged on real zeros-ish traffic
    [gap] = result.insufficient
    assert gap["resource_id"] == ids["cpu-only"] and gap["name"] == "cpu-only"
    assert "network_in" in gap["metric"] and gap["coverage"] == 0.0
    detect_line = next(x for x in lines if x.startswith("detect: idle-gpus"))
    assert "2 candidates, 1 findings, 1 insufficient data" in detect_line and "1 without enough data" in detect_line

    doc = json.loads(render_json(result))
    assert [x["resource_id"] for x in doc["insufficient"]] == [ids["cpu-only"]]
    assert doc["totals"]["findings"] == 1 and doc["totals"]["monthly_waste_usd"] == float(result.monthly_waste_usd)
    assert {x["resource_id"] for x in doc["findings"]} == {ids["quiet"]}

    md = render_markdown(result)
    assert "## Insufficient data" in md and ids["cpu-only"] in md and "0% of 80%" in md
    html = render_html(result)
    assert 'id="table-insufficient"' in html and ids["cpu-only"] in html and "1 insufficient data" in html

    from rich.console import Console

    out = io.StringIO()
    render_table(result, Console(file=out, width=200))
    assert "Insufficient data" in out.getvalue() and ids["cpu-only"] in out.getvalue()
