"""A fake Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`) over stored DCGM-like series.

It evaluates the small PromQL subset Costwarden sends, for real, rather than matching query
strings: `sum|max|min|avg|count by (labels) (expr)`, `avg_over_time|last_over_time|max_over_time
(selector[dur])`, selectors with `=`, `!=`, `=~`, `!~` matchers, and `expr * number`. So a wrong
label, a wrong regex escape or a wrong window in our queries gives wrong answers in tests. Anything
else is a 400 `bad_data`, as Prometheus answers a query it cannot parse.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from costwarden.agent.demo.fakes._http import FakeServer, Reply

_DUR = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class StoredSeries:
    labels: dict[str, str]  # including __name__
    samples: list[tuple[float, float]] = field(default_factory=list)  # (epoch seconds, value), sorted
    times: list[float] = field(default_factory=list)

    def window(self, lo: float, hi: float) -> list[float]:
        """Values with lo < t <= hi."""
        a = bisect.bisect_right(self.times, lo)
        b = bisect.bisect_right(self.times, hi)
        return [v for _, v in self.samples[a:b]]


def _bad(msg: str) -> Reply:
    return Reply(400, {"status": "error", "errorType": "bad_data", "error": msg})


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def _ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def _take(self, pattern: str) -> re.Match[str] | None:
        self._ws()
        m = re.compile(pattern).match(self.s, self.i)
        if m:
            self.i = m.end()
        return m

    def _expect(self, pattern: str, what: str) -> re.Match[str]:
        m = self._take(pattern)
        if m is None:
            raise _bad(f"parse error at char {self.i + 1}: expected {what}")
        return m

    def parse(self) -> Any:
        node = self.expr()
        self._ws()
        if self.i != len(self.s):
            raise _bad(f"parse error at char {self.i + 1}: unexpected {self.s[self.i:self.i + 10]!r}")
        return node

    def expr(self) -> Any:
        node = self.term()
        while self._take(r"\*"):
            num = self._expect(r"[0-9.]+(?:e[0-9]+)?", "number")
            node = ("mul", node, float(num.group(0)))
        return node

    def term(self) -> Any:
        m = self._take(r"(sum|max|min|avg|count)\s+by\s*\(")
        if m:
            labels = [x.strip() for x in self._expect(r"[^)]*", "labels").group(0).split(",") if x.strip()]
            self._expect(r"\)", "')'")
            self._expect(r"\(", "'('")
            inner = self.expr()
            self._expect(r"\)", "')'")
            return ("agg", m.group(1), labels, inner)
        m = self._take(r"(avg_over_time|last_over_time|max_over_time)\s*\(")
        if m:
            sel = self.selector()
            d = self._expect(r"\[(\d+)([smhdw])\]", "range like [1h]")
            self._expect(r"\)", "')'")
            return ("func", m.group(1), sel, int(d.group(1)) * _DUR[d.group(2)])
        return ("instant", self.selector())

    def selector(self) -> Any:
        name = self._expect(r"[a-zA-Z_:][a-zA-Z0-9_:]*", "metric name").group(0)
        matchers = [("__name__", "=", name)]
        if self._take(r"\{"):
            while not self._take(r"\}"):
                m = self._expect(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', "label matcher")
                matchers.append((m.group(1), m.group(2), _unquote(m.group(3))))
                self._take(",")
        return matchers


def _matches(labels: dict[str, str], matchers: list[tuple[str, str, str]]) -> bool:
    for name, op, value in matchers:
        have = labels.get(name, "")
        ok = {"=": have == value, "!=": have != value,
              "=~": re.fullmatch(value, have) is not None, "!~": re.fullmatch(value, have) is None}[op]
        if not ok:
            return False
    return True


class FakePrometheus(FakeServer):
    """Series are added with `add_series`; `failing` makes every query answer 503."""

    def __init__(self) -> None:
        super().__init__()
        self.series: list[StoredSeries] = []
        self.queries: list[str] = []
        self.failing = False

    def add_series(self, metric: str, labels: dict[str, str], samples: list[tuple[float, float]]) -> None:
        with self.lock:
            ordered = sorted(samples)
            self.series.append(StoredSeries({"__name__": metric, **labels}, ordered, [t for t, _ in ordered]))

    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method not in ("GET", "POST"):
            raise Reply(405, {"status": "error", "errorType": "bad_data", "error": "method not allowed"})
        params = {**query, **(body if isinstance(body, dict) else {})}
        if self.failing:
            raise Reply(503, {"status": "error", "errorType": "unavailable", "error": "fake: service unavailable"})
        if "query" not in params:
            raise _bad("missing query")
        with self.lock:
            self.queries.append(params["query"])
            tree = _Parser(params["query"]).parse()
            if path == "/api/v1/query":
                at = float(params.get("time", 0))
                result = [{"metric": lbl, "value": [at, _fmt(v)]} for lbl, v in self._eval(tree, at)]
                return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
            if path == "/api/v1/query_range":
                start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
                if step <= 0 or end < start:
                    raise _bad("invalid start/end/step")
                if (end - start) / step > 11000:
                    raise _bad("exceeded maximum resolution of 11,000 points per timeseries")
                rows: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
                t = start
                while t <= end:
                    for lbl, v in self._eval(tree, t):
                        key = tuple(sorted(lbl.items()))
                        rows.setdefault(key, {"metric": lbl, "values": []})["values"].append([t, _fmt(v)])
                    t += step
                return 200, {"status": "success", "data": {"resultType": "matrix", "result": list(rows.values())}}
        raise Reply(404, {"status": "error", "errorType": "not_found", "error": f"no route {path}"})

    def _eval(self, node: Any, t: float) -> list[tuple[dict[str, str], float]]:
        kind = node[0]
        if kind == "mul":
            return [(lbl, v * node[2]) for lbl, v in self._eval(node[1], t)]
        if kind == "agg":
            _, op, by, inner = node
            groups: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
            for lbl, v in self._eval(inner, t):
                groups[tuple((k, lbl[k]) for k in by if k in lbl)].append(v)
            fn = {"sum": sum, "max": max, "min": min, "avg": lambda xs: sum(xs) / len(xs), "count": len}[op]
            return [(dict(k), float(fn(vs))) for k, vs in groups.items()]
        if kind == "func":
            _, fn, matchers, rng = node
            out = []
            for s in self.series:
                if not _matches(s.labels, matchers):
                    continue
                vals = s.window(t - rng, t)
                if not vals:
                    continue
                value = {"avg_over_time": sum(vals) / len(vals), "last_over_time": vals[-1],
                         "max_over_time": max(vals)}[fn]
                out.append(({k: v for k, v in s.labels.items() if k != "__name__"}, value))
            return out
        if kind == "instant":  # last sample within the 5-minute lookback, as Prometheus does
            out = []
            for s in self.series:
                if _matches(s.labels, node[1]):
                    vals = s.window(t - 300, t)
                    if vals:
                        out.append((dict(s.labels), vals[-1]))
            return out
        raise _bad(f"unsupported expression {kind}")


def _fmt(v: float) -> str:
    return "NaN" if math.isnan(v) else repr(float(v))
