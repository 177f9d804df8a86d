"""The demo's indexed GetMetricData answers exactly what moto's own does, for any stored data and
MetricStat queries (names, namespaces, dimensions in any order, units, periods, statistics)."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from moto.cloudwatch.models import CloudWatchBackend

from costwarden.agent.demo.moto_metrics import get_metric_data, indexed_get_metric_data

T0 = datetime(2026, 3, 1, 0, 0)  # moto keeps naive UTC
NAMES = ["CPUUtilization", "nvidia_smi_utilization_gpu", "Invocations"]
NAMESPACES = ["AWS/EC2", "CWAgent", "AWS/SageMaker"]
DIMS = st.lists(st.tuples(st.sampled_from(["InstanceId", "EndpointName", "VariantName"]),
                          st.sampled_from(["i-1", "i-2", "AllTraffic"])), max_size=2)
UNITS = st.sampled_from([None, "Percent", "Bytes"])

datum = st.fixed_dictionaries({
    "namespace": st.sampled_from(NAMESPACES), "name": st.sampled_from(NAMES), "dims": DIMS, "unit": UNITS,
    "minute": st.integers(0, 6 * 60), "value": st.floats(-1e6, 1e6, allow_nan=False),
})
query = st.fixed_dictionaries({
    "namespace": st.sampled_from(NAMESPACES), "name": st.sampled_from(NAMES), "dims": DIMS, "unit": UNITS,
    "period": st.sampled_from([60, 300, 3600, 7200]),
    "stat": st.sampled_from(["Average", "Sum", "Minimum", "Maximum", "SampleCount"]),
    "return": st.booleans(), "label": st.sampled_from([None, "mine"]),
})


def backend_with(data: list[dict]) -> CloudWatchBackend:
    backend = CloudWatchBackend("us-east-1", "123456789012")
    for d in data:
        member = {"MetricName": d["name"], "Dimensions": [{"Name": n, "Value": v} for n, v in d["dims"]],
                  "Timestamp": T0 + timedelta(minutes=d["minute"]), "Value": d["value"]}
        if d["unit"]:
            member["Unit"] = d["unit"]
        backend.put_metric_data(d["namespace"], [member])
    return backend


def as_request(i: int, q: dict) -> dict:
    stat = {"Metric": {"Namespace": q["namespace"], "MetricName": q["name"],
                       "Dimensions": [{"Name": n, "Value": v} for n, v in q["dims"]]},
            "Period": q["period"], "Stat": q["stat"]}
    if q["unit"]:
        stat["Unit"] = q["unit"]
    out = {"Id": f"q{i}", "MetricStat": stat, "ReturnData": q["return"]}
    if q["label"]:
        out["Label"] = q["label"]
    return out


@settings(max_examples=150, deadline=None)
@given(data=st.lists(datum, max_size=60), queries=st.lists(query, min_size=1, max_size=6),
       start=st.integers(0, 3 * 60), length=st.integers(1, 6 * 60),
       scan_by=st.sampled_from(["TimestampAscending", "TimestampDescending"]))
def test_indexed_answers_match_motos(data, queries, start, length, scan_by):
    backend = backend_with(data)
    requests = [as_request(i, q) for i, q in enumerate(queries)]
    begin = T0 + timedelta(minutes=start, seconds=30)  # moto drops the microseconds, not the seconds
    end = begin + timedelta(minutes=length)
    expected = CloudWatchBackend.get_metric_data(backend, requests, begin, end, scan_by)
    assert get_metric_data(backend, requests, begin, end, scan_by) == expected


def test_installed_only_inside_and_expressions_stay_motos():
    backend = backend_with([{"namespace": "AWS/EC2", "name": "CPUUtilization", "dims": [("InstanceId", "i-1")],
                             "unit": None, "minute": 5, "value": 2.0}])
    original = CloudWatchBackend.get_metric_data
    with indexed_get_metric_data():
        assert CloudWatchBackend.get_metric_data is not original
        math = [as_request(0, {"namespace": "AWS/EC2", "name": "CPUUtilization", "dims": [("InstanceId", "i-1")],
                                "unit": None, "period": 3600, "stat": "Sum", "return": False, "label": None}),
                {"Id": "e1", "Expression": "SUM(METRICS())", "ReturnData": True}]
        answer = backend.get_metric_data(math, T0, T0 + timedelta(hours=1))
    assert CloudWatchBackend.get_metric_data is original
    assert [r["id"] for r in answer] == ["e1"]  # metric math went to moto's own code
    assert answer == backend.get_metric_data(math, T0, T0 + timedelta(hours=1))
