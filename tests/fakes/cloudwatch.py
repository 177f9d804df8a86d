"""A lean CloudWatch GetMetricData on 127.0.0.1, for estates too large for moto.

moto's GetMetricData costs O(queries x stored datapoints) (500 queries over 12k datapoints took
19 s) and enforces neither the 500-query limit nor the 100,800-datapoint page, so a sweep of
thousands of instances can neither be timed nor be proved to batch and paginate correctly
against it. This fake stores regular series as arrays (slicing a window is O(1) per query),
enforces both limits like CloudWatch, and records every request by operation, so mutating
calls are counted at the server, as in tests/fakes/moto_server.py.

It speaks awsJson1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Operation>`), the protocol
botocore picks for CloudWatch first (its priority order puts `json` before
`smithy-rpc-v2-cbor`). Real boto3 reaches it through `AWS_ENDPOINT_URL_CLOUDWATCH` while moto
serves every other service through `AWS_ENDPOINT_URL`. Anything else (PutMetricData, metric
math, the CBOR protocol) is answered with a 400 that says so, and still recorded.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.fakes._wsgi import WsgiFake

MAX_QUERIES = 500  # CloudWatch's limit on MetricDataQueries per GetMetricData call
MAX_DATAPOINTS = 100_800  # CloudWatch's limit on datapoints returned per GetMetricData call
TARGET_PREFIX = "GraniteServiceVersion20100801."
JSON_CONTENT = "application/x-amz-json-1.0"
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")

SeriesKey = tuple[str, str, str, tuple[tuple[str, str], ...]]  # region, namespace, metric, sorted dims


@dataclass(frozen=True)
class Stored:
    """A regular series: values[i] is the datapoint at start + i * period (epoch seconds)."""

    start: int
    period: int
    values: Sequence[float]


class FakeError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def series_key(region: str, namespace: str, metric: str, dims: dict[str, str] | list[dict[str, str]]) -> SeriesKey:
    pairs = dims.items() if isinstance(dims, dict) else ((d["Name"], d["Value"]) for d in dims)
    return region, namespace, metric, tuple(sorted((str(k), str(v)) for k, v in pairs))


def _aggregate(stat: str, vs: list[float]) -> float:
    if stat == "Sum":
        return sum(vs)
    if stat == "Average":
        return sum(vs) / len(vs)
    if stat == "Maximum":
        return max(vs)
    if stat == "Minimum":
        return min(vs)
    if stat == "SampleCount":
        return float(len(vs))
    raise FakeError("InvalidParameterValue",
                    f"the fake supports Average, Sum, Minimum, Maximum and SampleCount, not {stat!r}")


def _points(s: Stored, start: float, end: float, period: int, stat: str) -> tuple[list[int], list[float]]:
    """Datapoints with start <= t < end, rolled up to `period` when it is a multiple of the stored one."""
    if period % s.period:
        raise FakeError("InvalidParameterValue", f"Period {period} is not a multiple of the stored period {s.period}")
    first = max(0, -(-(int(start) - s.start) // s.period))
    last = min(len(s.values), -(-(int(end) - s.start) // s.period))
    if first >= last:
        return [], []
    if period == s.period:
        return list(range(s.start + first * s.period, s.start + last * s.period, s.period)), list(s.values[first:last])
    buckets: dict[int, list[float]] = {}
    for i in range(first, last):
        t = s.start + i * s.period
        buckets.setdefault(t - t % period, []).append(s.values[i])
    times = sorted(buckets)
    return times, [_aggregate(stat, buckets[t]) for t in times]


class CloudWatchFake(WsgiFake):
    """GetMetricData over series seeded with `put_series`; see the module docstring."""

    def __init__(self, *, max_datapoints: int = MAX_DATAPOINTS, max_queries: int = MAX_QUERIES) -> None:
        self.max_datapoints = max_datapoints
        self.max_queries = max_queries
        self._series: dict[SeriesKey, Stored] = {}
        self._lock = threading.Lock()
        self._calls: list[str] = []
        self.stats: Counter[str] = Counter()  # datapoints served, server milliseconds
        self.queries_per_call: list[int] = []  # one entry per GetMetricData request (pages included)
        self._server: Any = None

    # -- seeding and inspection (direct, not over the wire) --------------------------------------

    def put_series(self, region: str, namespace: str, metric: str, dims: dict[str, str], *, start: int,
                   period: int, values: Sequence[float]) -> None:
        """Store a regular series; `values` may be shared between series (seeding 20k series stays cheap)."""
        self._series[series_key(region, namespace, metric, dims)] = Stored(int(start), int(period), values)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self.stats.clear()
            self.queries_per_call.clear()

    # -- server ----------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        t0 = time.perf_counter()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        path = environ.get("PATH_INFO", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else (
            path.rsplit("/operation/", 1)[-1] if "/operation/" in path else f"{environ.get('REQUEST_METHOD')} {path}")
        with self._lock:
            self._calls.append(op)
        try:
            if not target.startswith(TARGET_PREFIX):
                raise FakeError("UnknownOperationException",
                                "this fake speaks awsJson1.0 (X-Amz-Target) only, not CBOR or query")
            if op != "GetMetricData":
                raise FakeError("UnknownOperationException", f"the fake implements GetMetricData only, not {op}")
            m = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
            out = self.get_metric_data(m.group(1) if m else "us-east-1", json.loads(body or b"{}"))
            status, payload = "200 OK", out
            headers = [("Content-Type", JSON_CONTENT)]
        except FakeError as exc:
            status = f"{exc.status} Bad Request"
            payload = {"__type": exc.code, "message": exc.message}
            headers = [("Content-Type", JSON_CONTENT), ("x-amzn-query-error", f"{exc.code};Sender")]
        data = json.dumps(payload, separators=(",", ":")).encode()
        headers.append(("Content-Length", str(len(data))))
        start_response(status, headers)
        with self._lock:
            self.stats["server_ms"] += int((time.perf_counter() - t0) * 1000)
        return [data]

    # -- the operation ---------------------------------------------------------------------------

    def get_metric_data(self, region: str, req: dict[str, Any]) -> dict[str, Any]:
        """CloudWatch's GetMetricData: at most `max_queries` queries; at most `max_datapoints`
        datapoints a page, the rest behind NextToken (an offset into the request's datapoints)."""
        queries = req.get("MetricDataQueries") or []
        if not queries:
            raise FakeError("ValidationError", "MetricDataQueries must not be empty")
        if len(queries) > self.max_queries:
            raise FakeError("ValidationError", f"The collection MetricDataQueries must not have a size greater "
                                               f"than {self.max_queries}.")
        ids = [q.get("Id", "") for q in queries]
        if len(set(ids)) != len(ids) or not all(re.fullmatch(r"[a-z][a-zA-Z0-9_]*", i) for i in ids):
            raise FakeError("ValidationError", "query Ids must be unique and start with a lowercase letter")
        start, end = float(req["StartTime"]), float(req["EndTime"])
        if start >= end:
            raise FakeError("ValidationError", "The parameter StartTime must be less than the parameter EndTime.")
        limit = min(self.max_datapoints, int(req.get("MaxDatapoints") or self.max_datapoints))
        descending = req.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        qi, pi = _decode_token(req.get("NextToken"), len(queries))
        results: list[dict[str, Any]] = []
        room = limit
        while qi < len(queries) and room > 0:
            q = queries[qi]
            if "Expression" in q or "MetricStat" not in q:
                raise FakeError("ValidationError", "the fake evaluates MetricStat queries only, not metric math")
            ms = q["MetricStat"]
            metric = ms["Metric"]
            stored = self._series.get(series_key(region, metric.get("Namespace", ""), metric.get("MetricName", ""),
                                                 metric.get("Dimensions") or []))
            times, values = _points(stored, start, end, int(ms["Period"]), ms["Stat"]) if stored else ([], [])
            if descending:
                times.reverse()
                values.reverse()
            take = min(room, len(times) - pi)
            done = pi + take >= len(times)
            if q.get("ReturnData", True):
                results.append({"Id": q["Id"], "Label": q.get("Label") or metric.get("MetricName", ""),
                                "Timestamps": times[pi:pi + take], "Values": values[pi:pi + take],
                                "StatusCode": "Complete" if done else "PartialData"})
            room -= take
            if done:
                qi, pi = qi + 1, 0
            else:
                pi += take
        with self._lock:
            self.queries_per_call.append(len(queries))
            self.stats["datapoints"] += limit - room
        out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if qi < len(queries):
            out["NextToken"] = base64.urlsafe_b64encode(f"{qi}:{pi}".encode()).decode()
        return out


def _decode_token(token: str | None, n_queries: int) -> tuple[int, int]:
    if token is None:
        return 0, 0
    try:
        qi, pi = (int(x) for x in base64.urlsafe_b64decode(token.encode()).decode().split(":"))
    except (ValueError, UnicodeDecodeError):
        raise FakeError("InvalidNextToken", "The service returned an invalid NextToken.") from None
    if not 0 <= qi < n_queries or pi < 0:
        raise FakeError("InvalidNextToken", "The service returned an invalid NextToken.")
    return qi, pi


__all__ = ["CloudWatchFake", "MAX_DATAPOINTS", "MAX_QUERIES", "series_key"]
