"""GetMetricData batching at scale, against the lean fakes (tests/fakes/cloudwatch.py, ec2.py),
which enforce CloudWatch's 500-query and 100,800-datapoint limits and page DescribeInstances by
instance as EC2 does, while moto answers STS. Real boto3 reaches them through the per-service
AWS_ENDPOINT_URL_<SERVICE> variables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError

from costwarden.state.domain import MetricRequest, Resource
from tests.fakes.cloudwatch import CloudWatchFake
from tests.fakes.ec2 import Ec2Fake
from tests.fakes.moto_server import mutating
from costwarden.tools.aws.cloudwatch import SAGEMAKER_ENDPOINT_METRICS, fetch_series, utc_timestamp
from costwarden.tools.aws.collect import resources_per_batch
from costwarden.tools.aws.session import AwsClients
from costwarden.tools.collectors import CollectPlan, CollectReport, Scope, get_collector

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=timezone.utc)
END = NOW.replace(minute=0)
IDLE_GPU_METRICS = [MetricRequest("cpu_utilization"), MetricRequest("gpu_utilization"),
                    MetricRequest("network_in", "Sum"), MetricRequest("network_out", "Sum")]


@pytest.fixture
def fakes(aws, monkeypatch) -> Iterator[tuple[Ec2Fake, CloudWatchFake]]:
    ec2, cw = Ec2Fake().start(), CloudWatchFake().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", ec2.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", cw.endpoint)
    yield ec2, cw
    ec2.stop()
    cw.stop()


def seed_metrics(cw: CloudWatchFake, ids: list[str], hours: int, region: str = "us-east-1") -> None:
    start = int((END - timedelta(hours=hours)).timestamp())
    for n, iid in enumerate(ids):
        for namespace, metric in (("AWS/EC2", "CPUUtilization"), ("CWAgent", "nvidia_smi_utilization_gpu"),
                                  ("AWS/EC2", "NetworkIn"), ("AWS/EC2", "NetworkOut")):
            cw.put_series(region, namespace, metric, {"InstanceId": iid}, start=start, period=3600,
                          values=[float(n + h) for h in range(hours)])


def test_resources_per_batch_fills_500_queries() -> None:
    assert resources_per_batch(4) == 125  # idle-gpu: 5,000 instances in 40 calls, not 50
    assert resources_per_batch(7) == 71
    assert resources_per_batch(0) == 500  # inventory-only policies: batches bound memory, nothing else
    assert resources_per_batch(600) == 1


def test_utc_timestamp_is_the_same_instant_in_utc() -> None:
    ts = utc_timestamp(1772452800)
    assert ts == datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc) and ts.utcoffset() == timedelta(0)
    assert utc_timestamp(1772452800.5).timestamp() == 1772452800.5
    assert utc_timestamp("2026-03-02T12:00:00Z") == ts  # ISO strings still go through botocore's parser


def test_fake_enforces_the_500_query_limit(fakes) -> None:
    """The limit the collector must respect is real here (moto does not enforce it)."""
    _, cw_fake = fakes
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    q = [{"Id": f"q{i}", "MetricStat": {"Metric": {"Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
                                                   "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}]},
                                        "Period": 3600, "Stat": "Average"}} for i in range(501)]
    with pytest.raises(ClientError, match="greater than 500"):
        cw.get_metric_data(MetricDataQueries=q, StartTime=END - timedelta(hours=2), EndTime=END)
    assert cw.get_metric_data(MetricDataQueries=q[:500], StartTime=END - timedelta(hours=2),
                              EndTime=END)["MetricDataResults"][0]["StatusCode"] == "Complete"
    assert cw_fake.calls == ["GetMetricData", "GetMetricData"] and cw_fake.queries_per_call == [500]


def test_collect_streams_pages_and_packs_500_queries_per_call(fakes) -> None:
    """1,010 GPU and 190 CPU instances: DescribeInstances in pages of 1,000; GetMetricData for the
    GPU candidates only, 125 instances (500 queries) a call; observations flow before the
    inventory is finished; nothing mutating reaches any server."""
    ec2_fake, cw_fake = fakes
    gpu = [*ec2_fake.add_instances("us-east-1", "g5.xlarge", 505),
           *ec2_fake.add_instances("us-east-1", "p4d.24xlarge", 505)]
    ec2_fake.add_instances("us-east-1", "m5.xlarge", 190)
    seed_metrics(cw_fake, gpu, hours=30)
    clients = AwsClients(dry_run=True)
    plan = CollectPlan(wants=lambda r: r.kind.split(".")[0] in ("g5", "p4d"), metrics=IDLE_GPU_METRICS,
                       lookback_hours=24, now=NOW)
    report = CollectReport()
    stream = get_collector("aws.ec2").collect(clients, Scope(regions=["us-east-1"]), plan, report)

    first = next(stream)
    assert ec2_fake.page_sizes == [1000] and cw_fake.queries_per_call == [500]  # lazy: one page, one batch
    observations = [first, *stream]

    assert report.errors == [] and report.inventoried == 1200 and report.candidates == 1010
    assert ec2_fake.page_sizes == [1000, 200]
    assert cw_fake.queries_per_call == [500] * 8 + [40]  # 9 calls for 1,010 instances, none over 500
    assert len(observations) == 1010
    assert {o.resource.resource_id for o in observations} == set(gpu)
    for o in observations:
        assert sorted(o.series) == ["cpu_utilization", "gpu_utilization", "network_in", "network_out"]
        assert all(len(s.points) == 24 for s in o.series.values())
    calls = ec2_fake.calls + cw_fake.calls
    assert set(calls) == {"DescribeInstances", "GetMetricData"}
    assert mutating(calls) == []


def test_fetch_series_follows_next_token_without_loss_or_duplicates(fakes) -> None:
    """At 1,000 datapoints a page (CloudWatch's is 100,800), 125 instances x 4 metrics x 168 hours
    come back over 84 pages; every series must still hold its 168 points, once each, in order."""
    _, cw_fake = fakes
    cw_fake.max_datapoints = 1000
    ids = [f"i-{n:017x}" for n in range(125)]
    seed_metrics(cw_fake, ids, hours=168)
    resources = [Resource(provider="aws", account="123456789012", region="us-east-1", resource_type="aws.ec2",
                          resource_id=i, kind="g5.xlarge", state="running") for i in ids]
    out = fetch_series(AwsClients(dry_run=True), "us-east-1", resources, IDLE_GPU_METRICS,
                       start=END - timedelta(hours=168), end=END)

    assert len(cw_fake.queries_per_call) == 84  # 84,000 datapoints, 1,000 a page
    assert set(out) == set(ids)
    first_ts = (END - timedelta(hours=168)).timestamp()
    for n, i in enumerate(ids):
        for s in out[i].values():
            assert [t for t, _ in s.points] == [first_ts + 3600 * h for h in range(168)]
            assert [v for _, v in s.points] == [float(n + h) for h in range(168)]


def test_fanned_out_batch_over_500_queries_is_split(fakes) -> None:
    """SageMaker endpoints fan out per variant: 100 endpoints x 3 variants x 2 metrics = 600 queries
    in one batch go out as two calls (500 + 100), and variants are merged back per endpoint."""
    _, cw_fake = fakes
    start = int((END - timedelta(hours=24)).timestamp())
    endpoints = []
    for n in range(100):
        name = f"ep-{n}"
        endpoints.append(Resource(provider="aws", account="123456789012", region="us-east-1",
                                  resource_type="aws.sagemaker-endpoint", resource_id=name, kind="ml.g5.xlarge",
                                  state="InService", attrs={"variant_names": ["a", "b", "c"]}))
        for v, level in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
            dims = {"EndpointName": name, "VariantName": v}
            cw_fake.put_series("us-east-1", "AWS/SageMaker", "Invocations", dims, start=start, period=3600,
                               values=[level] * 30)
            cw_fake.put_series("us-east-1", "/aws/sagemaker/Endpoints", "GPUUtilization", dims, start=start,
                               period=3600, values=[10 * level] * 30)
    out = fetch_series(AwsClients(dry_run=True), "us-east-1", endpoints,
                       [MetricRequest("invocations", "Sum"), MetricRequest("gpu_utilization")],
                       start=END - timedelta(hours=24), end=END, catalog=SAGEMAKER_ENDPOINT_METRICS)

    assert cw_fake.queries_per_call == [500, 100]
    for ep in endpoints:
        assert out[ep.resource_id]["invocations"].values == [6.0] * 24  # summed over the three variants
        assert out[ep.resource_id]["gpu_utilization"].values == [20.0] * 24  # averaged


def test_mutating_calls_are_counted_where_they_arrive(fakes) -> None:
    """The benchmark's zero-mutation figure is only worth something if a mutating call that does
    arrive is counted: a plain boto3 StopInstances reaches the fake (and is refused and recorded);
    the same call through dry-run clients never leaves the process."""
    from costwarden.tools.errors import DryRunViolation

    ec2_fake, _ = fakes
    iid = ec2_fake.add_instances("us-east-1", "g5.xlarge", 1)[0]
    with pytest.raises(ClientError, match="UnsupportedOperation"):
        boto3.client("ec2", region_name="us-east-1").stop_instances(InstanceIds=[iid])
    assert mutating(ec2_fake.calls) == ["StopInstances"]
    ec2_fake.clear_calls()
    with pytest.raises(DryRunViolation):
        AwsClients(dry_run=True).client("ec2", "us-east-1").stop_instances(InstanceIds=[iid])
    assert ec2_fake.calls == []
