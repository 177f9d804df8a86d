"""Prometheus as a GPU utilization source: NVIDIA DCGM exporter metrics through the HTTP API.

Why Prometheus: GPU fleets in Kubernetes (and many VMs) already run NVIDIA's dcgm-exporter,
scraped by Prometheus. Its `DCGM_FI_DEV_GPU_UTIL` (0-100) or `DCGM_FI_PROF_GR_ENGINE_ACTIVE`
(0-1, scaled x100 here) is the GPU signal CloudWatch needs an agent for.

What a resource's series is: for each hour, the average utilization of each GPU over that hour,
then the *busiest* GPU of the resource (`max by (<label>)`). A node whose one GPU in eight works
is not idle; averaging the GPUs would say 12% and hide that.

Queries are batched: one `query_range` per up to `batch_size` resources (a `=~` regex on the
mapping label), never one per resource; inventory of a scraped cluster is one instant query.
Only GET requests are ever made (stdlib urllib; no new dependency).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from costwarden.state.domain import Resource, Series
from costwarden.tools.collectors import batched, window
from costwarden.tools.errors import ToolError

GPU_METRICS = {"DCGM_FI_DEV_GPU_UTIL": 1.0, "DCGM_FI_PROF_GR_ENGINE_ACTIVE": 100.0}  # -> percent
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_MATCHER = re.compile(rf'\s*({_LABEL})\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_RE_SPECIAL = set(".^$*+?()[]{}|\\")


class PrometheusSettings(BaseModel):
    """The `prometheus:` config section. Nothing is queried unless `url` is set."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090")
    gpu_metric: Literal["DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_PROF_GR_ENGINE_ACTIVE"] = Field(
        "DCGM_FI_DEV_GPU_UTIL", description=(
            "DCGM exporter GPU utilization series (the 0-1 engine-active one is scaled to %)."))
    selector: str = Field("", description='Extra label matchers for every query, e.g. cluster="prod"')
    node_label: str = Field("Hostname", pattern=_LABEL, description=(
        "Label naming the resource of a k8s.gpu-node: the Kubernetes node (e.g. 'Hostname' or 'node'), or 'pod'."))
    model_label: str = Field("modelName", pattern=_LABEL, description=(
        "Label holding the GPU model name (for its price)."))
    gpu_label: str = Field("gpu", pattern=_LABEL, description="Label telling a node's GPUs apart.")
    cluster: str = Field("default", description="Account shown for k8s.gpu-node resources.")
    region: str = Field("", description="Region shown for k8s.gpu-node resources (e.g. the cluster's region).")
    gcp_instance_label: str | None = Field(None, pattern=_LABEL, description=(
        "When set, gcp.compute instances take their GPU series from Prometheus, matched on this label."))
    gcp_match: Literal["name", "id"] = Field("name", description="What gcp_instance_label holds: instance name or id.")
    step_seconds: int = Field(3600, ge=60, le=86400, description="Resolution of the range queries.")
    batch_size: int = Field(100, ge=1, le=1000, description="Resources named in one query.")
    timeout_seconds: float = Field(30.0, gt=0, description="Per HTTP request.")
    bearer_token: SecretStr | None = Field(None, description="Sent as Authorization: Bearer; never logged.")

    @field_validator("selector")
    @classmethod
    def _matchers(cls, v: str) -> str:
        v = v.strip().strip("{}").strip()
        if v and not all(_MATCHER.fullmatch(part) for part in _split_matchers(v)):
            raise ValueError('use PromQL label matchers, e.g. cluster="prod",namespace=~"ml-.*"')
        return v

    @property
    def configured(self) -> bool:
        return bool(self.url)


def _split_matchers(text: str) -> list[str]:
    """Split 'a="x,y",b=~"z"' on the commas outside quotes."""
    parts, cur, quoted, esc = [], "", False, False
    for ch in text:
        if esc:
            cur, esc = cur + ch, False
            continue
        if ch == "\\":
            cur, esc = cur + ch, True
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def regex_alternatives(values: Iterable[str]) -> str:
    """An RE2 alternation matching exactly these values (node names contain dots)."""
    return "|".join("".join("\\" + c if c in _RE_SPECIAL else c for c in v) for v in values)


class PrometheusClient:
    """The HTTP API (`/api/v1/query`, `/api/v1/query_range`) over GET, with one-line errors."""

    def __init__(self, settings: PrometheusSettings) -> None:
        if not settings.url:
            raise ToolError("prometheus.url is not set")
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self.requests = 0

    def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, method="GET", headers={"Accept": "application/json"})
        if self.settings.bearer_token is not None:
            req.add_header("Authorization", f"Bearer {self.settings.bearer_token.get_secret_value()}")
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_seconds) as resp:  # the configured URL
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                detail = json.loads(exc.read()).get("error", "")
            except (ValueError, OSError):
                pass
            raise ToolError(f"prometheus {path}: HTTP {exc.code}{': ' + detail if detail else ''}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ToolError(f"prometheus {self.base}: {reason}") from None
        if doc.get("status") != "success":
            raise ToolError(f"prometheus {path}: {doc.get('errorType', 'error')}: {doc.get('error', '')}")
        data = doc.get("data") or {}
        if data.get("resultType") not in ("vector", "matrix"):
            raise ToolError(f"prometheus {path}: unexpected result type {data.get('resultType')!r}")
        return list(data.get("result") or [])

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]]:
        return self._get("/api/v1/query", {"query": promql, "time": f"{at.timestamp():.3f}"})

    def query_range(self, promql: str, start: datetime, end: datetime, step_s: int) -> list[dict[str, Any]]:
        return self._get("/api/v1/query_range", {"query": promql, "start": f"{start.timestamp():.3f}",
                                                  "end": f"{end.timestamp():.3f}", "step": str(step_s)})


def _selector(settings: PrometheusSettings, extra: str = "") -> str:
    parts = [p for p in (settings.selector, extra) if p]
    return settings.gpu_metric + "{" + ",".join(parts) + "}"


def _scaled(settings: PrometheusSettings, expr: str) -> str:
    factor = GPU_METRICS[settings.gpu_metric]
    return f"{expr} * {factor:g}" if factor != 1 else expr


class GpuUtilization:
    """GPU series for resources whose `label` value in DCGM metrics is `key(resource)`."""

    def __init__(self, client: PrometheusClient, label: str, key: Any) -> None:
        self.client = client
        self.label = label
        self.key = key

    def series_for(self, resources: list[Resource], start: datetime, end: datetime) -> dict[str, dict[str, Series]]:
        """{resource_id: {"gpu_utilization": Series}}: one query_range per batch of resources."""
        s = self.client.settings
        by_value = {self.key(r): r.resource_id for r in resources}
        out: dict[str, dict[str, Series]] = {}
        for batch in batched(sorted(by_value), s.batch_size):
            matcher = f"{self.label}=~{promql_string(regex_alternatives(batch))}"
            window_s = f"{s.step_seconds}s"
            expr = _scaled(s, f"max by ({self.label}) (avg_over_time({_selector(s, matcher)}[{window_s}]))")
            # the first step is the hour that *ends* at start + step, so start itself is excluded
            for row in self.client.query_range(expr, start + timedelta(seconds=s.step_seconds), end, s.step_seconds):
                rid = by_value.get(row.get("metric", {}).get(self.label, ""))
                if rid is None:
                    continue
                points = [(float(t), float(v)) for t, v in row.get("values", []) if v not in ("NaN", "+Inf", "-Inf")]
                out[rid] = {"gpu_utilization": Series("gpu_utilization", points)}
        return out


def gpu_nodes(client: PrometheusClient, now: datetime, lookback_hours: int) -> list[Resource]:
    """The resources of a scraped cluster: every `node_label` value with DCGM series in the lookback,
    with its GPU count and model. One instant query."""
    s = client.settings
    has_node = s.node_label + '!=""'  # series without the label (e.g. GCE VMs' exporters) are not nodes
    inner = (f"count by ({s.node_label}, {s.model_label}, {s.gpu_label}) "
             f"(last_over_time({_selector(s, has_node)}[{lookback_hours}h]))")
    rows = client.query(f"count by ({s.node_label}, {s.model_label}) ({inner})", now)
    nodes: dict[str, dict[str, Any]] = {}
    for row in rows:
        labels = row.get("metric", {})
        node = labels.get(s.node_label)
        if not node:
            continue
        count = int(float(row.get("value", [0, "0"])[1]))
        entry = nodes.setdefault(node, {"gpus": 0, "models": {}})
        entry["gpus"] += count
        model = labels.get(s.model_label, "unknown GPU")
        entry["models"][model] = entry["models"].get(model, 0) + count
    out = []
    for node, e in sorted(nodes.items()):
        model = max(e["models"], key=e["models"].get)
        out.append(Resource(provider="k8s", account=s.cluster, region=s.region, resource_type="k8s.gpu-node",
                            resource_id=node, kind=f"{e['gpus']}x {model}", state="running",
                            attrs={"gpu_count": e["gpus"], "gpu_model": model, "label": s.node_label,
                                   "source": "prometheus"}))
    return out


# -- the k8s.gpu-node collector: a Prometheus-scraped cluster's GPU nodes ---------------------------

def _source(settings: Any, _providers: Any = None) -> PrometheusClient | None:
    """Built from the settings (no cloud clients): None when prometheus.url is not set."""
    prom = getattr(settings, "prometheus", None)
    return PrometheusClient(prom) if prom is not None and prom.configured else None


def collect_gpu_nodes(client: PrometheusClient | None, scope: Any, plan: Any, report: Any) -> Iterator[Any]:
    """Nodes with DCGM series (one instant query), then their GPU series in batches. Nothing when unset."""
    from costwarden.state.domain import Observation

    if client is None:
        return
    s = client.settings
    start, end = window(plan.now, plan.lookback_hours)
    try:
        nodes = gpu_nodes(client, plan.now, plan.lookback_hours)
    except ToolError as exc:
        report.errors.append(f"k8s {s.cluster}: {exc}")
        return
    source = GpuUtilization(client, s.node_label, lambda r: r.resource_id)
    candidates = []
    for r in nodes:
        report.inventoried += 1
        if plan.wants(r):
            report.candidates += 1
            candidates.append(r)
    for batch in batched(candidates, s.batch_size):
        try:
            series = source.series_for(batch, start, end)
        except ToolError as exc:
            report.errors.append(f"k8s {s.cluster}: {exc}")
            return
        for r in batch:
            yield Observation(r, series.get(r.resource_id, {}))


def _register() -> None:
    from costwarden.tools.collectors import CollectorSpec, register_collector

    register_collector(CollectorSpec("k8s.gpu-node", "k8s", collect_gpu_nodes, source=_source, permissions=()))


_register()
