"""A fake Cloud Monitoring v3 MetricService, enough for Costwarden's utilization reads.

google-cloud-monitoring speaks gRPC only, so this is a gRPC server on 127.0.0.1:<free port>
that the real MetricServiceClient reaches over a plaintext channel. It implements
ListTimeSeries for real rather than matching requests: the filter (`metric.type`,
`resource.type`, `resource.labels.*`, `metric.labels.*`, `project`, with `=`, `!=`,
`one_of(...)`, `starts_with(...)` and `monitoring.regex.full_match(...)`, joined by AND), the
interval (start, end], per-series alignment (ALIGN_MEAN/SUM/MAX/MIN/COUNT over alignment
periods ending at the interval's end), cross-series reduction grouped by label fields
(REDUCE_MAX/MEAN/SUM/MIN/COUNT), points newest first as the API sends them, and pagination
with page_size/next_page_token. So a wrong filter, aligner or grouping in our requests gives
wrong answers in tests. CreateTimeSeries is accepted and recorded, which is how a test proves
that dry-run refused it before it left the client. `forbidden` projects answer
PERMISSION_DENIED, as a missing monitoring.timeSeries.list grant does.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

SERVICE = "google.monitoring.v3.MetricService"
_CLAUSE = re.compile(r'\s*([a-z_]+(?:\.[a-z_]+)*(?:\.[A-Za-z0-9_]+)?)\s*(!=|=)\s*(.+?)\s*$', re.S)
_STRING = r'"((?:[^"\\]|\\.)*)"'


class FilterError(ValueError):
    pass


@dataclass
class StoredSeries:
    project: str
    metric_type: str
    metric_labels: dict[str, str]
    resource_type: str
    resource_labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)  # (epoch seconds, value), oldest first
    int64: bool = False

    def value_of(self, key: str) -> str | None:
        if key == "metric.type":
            return self.metric_type
        if key == "resource.type":
            return self.resource_type
        if key == "project":
            return self.project
        for prefix, labels in (("resource.labels.", self.resource_labels), ("resource.label.", self.resource_labels),
                               ("metric.labels.", self.metric_labels), ("metric.label.", self.metric_labels)):
            if key.startswith(prefix):
                return labels.get(key[len(prefix):])
        raise FilterError(f"unsupported filter field {key!r}")


def _split_and(text: str) -> list[str]:
    """Split on AND outside quotes and parentheses."""
    parts, cur, quoted, depth, i = [], "", False, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quoted:
            cur += text[i:i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
        if not quoted and depth == 0 and text[i:i + 5].upper() == " AND ":
            parts.append(cur)
            cur, i = "", i + 5
            continue
        cur += ch
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_filter(text: str) -> list[Callable[[StoredSeries], bool]]:
    """The filter as predicates; a filter must name exactly one metric.type, as the API requires."""
    preds, metric_types = [], 0
    for clause in _split_and(text):
        m = _CLAUSE.fullmatch(clause)
        if not m:
            raise FilterError(f"cannot parse filter clause {clause!r}")
        key, op, rhs = m.groups()
        if key == "metric.type":
            metric_types += 1
        match = _matcher(rhs)
        preds.append(lambda s, key=key, op=op, match=match: (match(s.value_of(key)) if op == "=" else not match(s.value_of(key))))
    if metric_types != 1:
        raise FilterError("a time series filter must name exactly one metric.type")
    return preds


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _matcher(rhs: str) -> Callable[[str | None], bool]:
    m = re.fullmatch(_STRING, rhs)
    if m:
        value = _unquote(m.group(1))
        return lambda have: have == value
    m = re.fullmatch(r"(one_of|starts_with|ends_with|has_substring|monitoring\.regex\.full_match)\s*\((.*)\)", rhs, re.S)
    if not m:
        raise FilterError(f"cannot parse filter value {rhs!r}")
    fn, args = m.group(1), [_unquote(a) for a in re.findall(_STRING, m.group(2))]
    if not args:
        raise FilterError(f"{fn} needs a string argument")
    if fn == "one_of":
        return lambda have: have in args
    if fn == "starts_with":
        return lambda have: have is not None and have.startswith(args[0])
    if fn == "ends_with":
        return lambda have: have is not None and have.endswith(args[0])
    if fn == "has_substring":
        return lambda have: have is not None and args[0] in have
    try:
        rx = re.compile(args[0])
    except re.error as exc:
        raise FilterError(f"bad regex {args[0]!r}: {exc}") from None
    return lambda have: have is not None and rx.fullmatch(have) is not None


_ALIGN = {"ALIGN_MEAN": lambda xs: sum(xs) / len(xs), "ALIGN_SUM": sum, "ALIGN_MAX": max, "ALIGN_MIN": min,
          "ALIGN_COUNT": len}
_REDUCE = {"REDUCE_MEAN": lambda xs: sum(xs) / len(xs), "REDUCE_SUM": sum, "REDUCE_MAX": max, "REDUCE_MIN": min,
           "REDUCE_COUNT": len}


class FakeMonitoring:
    """Series are added with `add_series`; every request is recorded in `requests`."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.series: list[StoredSeries] = []
        self.forbidden: set[str] = set()
        self.requests: list[tuple[str, str, str]] = []  # (method, project, filter or "")
        self.created: list[Any] = []  # CreateTimeSeries requests that reached the server
        self.list_requests: list[Any] = []  # every ListTimeSeriesRequest, as received
        self._server: Any = None
        self._port = 0

    # -- seeding -------------------------------------------------------------------------------
    def add_series(self, project: str, metric_type: str, resource_labels: dict[str, str],
                   samples: list[tuple[float, float]], *, metric_labels: dict[str, str] | None = None,
                   resource_type: str = "gce_instance", int64: bool = False) -> None:
        with self.lock:
            self.series.append(StoredSeries(project, metric_type, dict(metric_labels or {}), resource_type,
                                            {"project_id": project, **resource_labels}, sorted(samples), int64))

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeMonitoring:
        import grpc
        from google.cloud import monitoring_v3

        handlers = {
            "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
                response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize),
            "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
                self._create, request_deserializer=monitoring_v3.CreateTimeSeriesRequest.deserialize,
                response_serializer=lambda _empty: b""),  # google.protobuf.Empty
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="FakeMonitoring"))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self) -> FakeMonitoring:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._port}"

    # -- what tests look at -------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[tuple[str, str, str]]:
        with self.lock:
            return [r for r in self.requests if method is None or r[0] == method]

    def mutating_calls(self) -> list[tuple[str, str, str]]:
        return [r for r in self.calls() if r[0] != "ListTimeSeries"]

    def clear_calls(self) -> None:
        with self.lock:
            self.requests.clear()

    # -- the API --------------------------------------------------------------------------------
    def _project(self, name: str, context: Any) -> str:
        import grpc

        m = re.fullmatch(r"projects/([^/]+)", name)
        if not m:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name must be projects/PROJECT, got {name!r}")
        if m.group(1) in self.forbidden:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "Permission monitoring.timeSeries.list denied (or the resource may not exist).")
        return m.group(1)

    def _create(self, request: Any, context: Any) -> Any:
        with self.lock:
            self.requests.append(("CreateTimeSeries", request.name.split("/")[-1], ""))
            self.created.append(request)
        return None

    def _list(self, request: Any, context: Any) -> Any:
        import grpc
        from google.cloud import monitoring_v3

        with self.lock:
            self.requests.append(("ListTimeSeries", request.name.split("/")[-1], request.filter))
            self.list_requests.append(request)
        project = self._project(request.name, context)
        try:
            preds = parse_filter(request.filter)
        except FilterError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Field filter had an invalid value: {exc}")
        if not request.interval.end_time:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Field interval.endTime is required")
        end = request.interval.end_time.timestamp()
        start = request.interval.start_time.timestamp() if request.interval.start_time else end
        with self.lock:
            matched = [s for s in self.series if s.project == project and all(p(s) for p in preds)]
        try:
            rows = self._aggregate(matched, request.aggregation, start, end)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        offset = int(request.page_token or 0)
        size = request.page_size or 100_000
        page = rows[offset:offset + size]
        token = str(offset + size) if offset + size < len(rows) else ""
        return monitoring_v3.ListTimeSeriesResponse(time_series=[self._to_proto(r) for r in page],
                                                    next_page_token=token)

    def _aggregate(self, matched: list[StoredSeries], agg: Any, start: float, end: float) -> list[dict[str, Any]]:
        aligner = agg.per_series_aligner.name if agg else "ALIGN_NONE"
        reducer = agg.cross_series_reducer.name if agg else "REDUCE_NONE"
        period = agg.alignment_period.total_seconds() if agg and agg.alignment_period else 0
        rows = []
        for s in matched:
            raw = [(t, v) for t, v in s.points if start < t <= end]
            if aligner == "ALIGN_NONE":
                if reducer != "REDUCE_NONE":
                    raise ValueError("a cross-series reducer needs a per-series aligner")
                points = [(t, t, v) for t, v in raw]
            else:
                if aligner not in _ALIGN:
                    raise ValueError(f"fake Monitoring does not implement {aligner}")
                if period < 60:
                    raise ValueError("The alignment period must be at least 60 seconds")
                points = []
                times = [t for t, _ in raw]
                hi = end
                while hi - period >= start:  # periods end at the interval's end, newest first
                    vals = [v for _, v in raw[bisect.bisect_right(times, hi - period):bisect.bisect_right(times, hi)]]
                    if vals:
                        points.append((hi - period, hi, float(_ALIGN[aligner](vals))))
                    hi -= period
            rows.append({"series": s, "points": points, "resource_labels": s.resource_labels,
                         "metric_labels": s.metric_labels, "int64": s.int64 and aligner in ("ALIGN_SUM", "ALIGN_COUNT",
                                                                                              "ALIGN_NONE")})
        if reducer == "REDUCE_NONE":
            return rows
        if reducer not in _REDUCE:
            raise ValueError(f"fake Monitoring does not implement {reducer}")
        groups: dict[tuple[tuple[str, str | None], ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[tuple((f, row["series"].value_of(f)) for f in agg.group_by_fields)].append(row)
        out = []
        for key, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
            by_time: dict[tuple[float, float], list[float]] = defaultdict(list)
            for row in members:
                for lo, hi, v in row["points"]:
                    by_time[(lo, hi)].append(v)
            first = members[0]["series"]
            res_labels = {"project_id": first.project}
            met_labels = {}
            for f, v in key:
                if v is None:
                    continue
                if f.startswith(("resource.labels.", "resource.label.")):
                    res_labels[f.rsplit(".", 1)[1]] = v
                elif f.startswith(("metric.labels.", "metric.label.")):
                    met_labels[f.rsplit(".", 1)[1]] = v
            points = [(lo, hi, float(_REDUCE[reducer](vs))) for (lo, hi), vs in sorted(by_time.items(), reverse=True)]
            out.append({"series": first, "points": points, "resource_labels": res_labels, "metric_labels": met_labels,
                        "int64": all(r["int64"] for r in members) and reducer in ("REDUCE_SUM", "REDUCE_COUNT",
                                                                                    "REDUCE_MAX", "REDUCE_MIN")})
        return out

    @staticmethod
    def _to_proto(row: dict[str, Any]) -> Any:
        """Built as a raw protobuf message: proto-plus would take seconds for a few hundred series."""
        from google.api import metric_pb2
        from google.cloud import monitoring_v3

        s: StoredSeries = row["series"]
        pb = monitoring_v3.TimeSeries.pb()()
        pb.metric.type = s.metric_type
        pb.metric.labels.update(row["metric_labels"])
        pb.resource.type = s.resource_type
        pb.resource.labels.update(row["resource_labels"])
        pb.metric_kind = metric_pb2.MetricDescriptor.MetricKind.GAUGE
        pb.value_type = (metric_pb2.MetricDescriptor.ValueType.INT64 if row["int64"]
                         else metric_pb2.MetricDescriptor.ValueType.DOUBLE)
        for lo, hi, v in row["points"]:
            point = pb.points.add()
            point.interval.start_time.seconds, point.interval.end_time.seconds = int(lo), int(hi)
            if row["int64"]:
                point.value.int64_value = int(v)
            else:
                point.value.double_value = v
        return monitoring_v3.TimeSeries.wrap(pb)
