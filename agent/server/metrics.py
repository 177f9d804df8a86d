"""/metrics in Prometheus format: store aggregates read at scrape time, plus process counters.

Store-backed figures are the same on every replica; counters (API calls, retries) and the
Slack Socket Mode figures are this process's own (each replica holds its own socket).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from costwarden.state.store import Store


_FIELDS = ("api_calls", "api_errors", "sweeps", "http_refusals", "otlp_requests", "otlp_spans")


class ProcessCounters:
    """Counters of this process: cloud API calls, errors, sweeps, refused HTTP requests. Cloud SDK
    retries are counted where they happen (tools/aws/retry.py) and read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.api_calls: Counter[str] = Counter()
        self.api_errors: Counter[str] = Counter()
        self.sweeps: Counter[str] = Counter()
        self.http_refusals: Counter[str] = Counter()  # by reason: requests refused before authentication
        self.otlp_requests: Counter[str] = Counter()  # POST /v1/traces answers, by status code
        self.otlp_spans: Counter[str] = Counter()  # spans received: accepted, rejected, skipped (not GenAI)

    def add(self, field: str, values: dict[str, int]) -> None:
        with self._lock:
            getattr(self, field).update(values)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: dict(getattr(self, k)) for k in _FIELDS}


class StoreCollector(Collector):
    def __init__(self, store: Store, counters: ProcessCounters, state: dict[str, Any],
                 slack_socket: dict[str, Any] | None = None, queue: Callable[[], Iterable[Any]] | None = None) -> None:
        self.store = store
        self.queue = queue
        self.counters = counters
        self.state = state
        self.slack_socket = slack_socket

    def collect(self) -> Iterator[Any]:
        snap = self.store.metrics_snapshot()
        findings = GaugeMetricFamily("costwarden_findings", "Findings of the latest sweep of each policy",
                                     labels=["policy", "detector"])
        waste = GaugeMetricFamily("costwarden_monthly_waste_usd", "Monthly waste found by the latest sweep",
                                  labels=["policy", "detector"])
        for policy, detector, n, usd in snap["findings"]:
            findings.add_metric([policy, detector], n)
            waste.add_metric([policy, detector], float(usd))
        yield findings
        yield waste
        actions = GaugeMetricFamily("costwarden_actions", "Actions by guard decision and status",
                                    labels=["decision", "status"])
        for decision, status, n in snap["actions"]:
            actions.add_metric([decision, status], n)
        yield actions
        yield GaugeMetricFamily("costwarden_projected_savings_executed_usd",
                                "Projected monthly savings of executed actions", value=float(snap["executed_projected_savings"]))
        realized = self.store.realized_totals()  # projected vs realized (agent/engine/realized.py measures it)
        yield GaugeMetricFamily("costwarden_realized_savings_monthly_usd",
                                "Realized monthly savings of executed actions, measured after them",
                                value=float(realized["realized_monthly_usd"]))
        yield GaugeMetricFamily("costwarden_realized_savings_to_date_usd",
                                "Dollars executed actions have saved so far", value=float(realized["realized_to_date_usd"]))
        yield GaugeMetricFamily("costwarden_pending_approvals", "Actions waiting for a human",
                                value=snap["pending_approvals"])
        runs = GaugeMetricFamily("costwarden_runs", "Sweeps recorded, by status", labels=["status"])
        for status, n in snap["runs"]:
            runs.add_metric([status], n)
        yield runs
        dur = GaugeMetricFamily("costwarden_sweep_duration_seconds", "Duration of the latest sweep of each policy",
                                labels=["policy"])
        for policy, secs in snap["durations"].items():
            dur.add_metric([policy], secs)
        yield dur
        tokens = CounterMetricFamily("costwarden_llm_tokens", "The agent's own LLM tokens", labels=["model", "kind"])
        cost = CounterMetricFamily("costwarden_llm_cost_usd", "The agent's own LLM spend", labels=["model"])
        for model, tin, tout, usd in snap["llm"]:
            tokens.add_metric([model, "input"], tin)
            tokens.add_metric([model, "output"], tout)
            cost.add_metric([model], float(usd))
        yield tokens
        yield cost
        c = self.counters.snapshot()
        for name, help_text, label in (("api_calls", "Cloud API calls made", "operation"),
                                       ("api_errors", "Cloud API errors (after retries)", "source"),
                                       ("sweeps", "Sweeps run by this process", "status"),
                                       ("http_refusals", "HTTP requests refused before authentication "
                                        "(malformed, too big, too slow, unsigned, another workspace)", "reason"),
                                       ("otlp_requests", "OTLP export requests answered, by HTTP status", "status"),
                                       ("otlp_spans", "OTLP spans received: accepted (spooled), rejected, skipped "
                                        "(not a model call)", "outcome")):
            fam = CounterMetricFamily(f"costwarden_{name}", help_text, labels=[label])
            for k, v in sorted(c[name].items()):
                fam.add_metric([k], v)
            yield fam
        yield cloud_api_calls_family()
        yield cloud_retries_family()
        yield GaugeMetricFamily("costwarden_leader", "1 if this replica schedules sweeps",
                                value=1 if self.state.get("leader") else 0)
        yield GaugeMetricFamily("costwarden_dry_run", "1 if sweeps cannot change anything",
                                value=1 if self.state.get("dry_run") else 0)
        if self.slack_socket is not None:
            yield from socket_mode_families(self.slack_socket)
        from costwarden.agent.server.queue_metrics import rate_budget_families

        yield from rate_budget_families()
        if self.queue is not None:  # the distributed mode's scheduler (agent/server/queue_metrics.py)
            yield from self.queue()


def cloud_api_calls_family() -> CounterMetricFamily:
    """`costwarden_cloud_api_calls_total{service,operation}`: every cloud API call this process sent
    (sweeps, approvals' executions, anything with a CallLog), each once whatever its retries."""
    from costwarden.tools.calls import process_call_counts, split_name

    fam = CounterMetricFamily("costwarden_cloud_api_calls", "Cloud API calls sent (each once, retries not "
                              "included), by service and API operation", labels=["service", "operation"])
    for (service, operation), n in sorted((split_name(k), v) for k, v in process_call_counts().items()):
        fam.add_metric([service, operation], n)
    return fam


def cloud_retries_family() -> CounterMetricFamily:
    """`costwarden_cloud_retries_total{service,operation}`: the SDK's retries in this process, by API operation."""
    from costwarden.tools.aws.retry import retry_counts

    fam = CounterMetricFamily("costwarden_cloud_retries", "Cloud API requests the SDK resent (throttling, 5xx, "
                              "connection errors), by service and API operation", labels=["service", "operation"])
    for (service, operation), n in sorted(retry_counts().items()):
        fam.add_metric([service, operation], n)
    return fam


def socket_mode_families(stats: dict[str, Any]) -> Iterator[Any]:
    """Socket Mode series, from SocketModeListener.stats(); absent when Socket Mode is off."""
    yield GaugeMetricFamily("costwarden_slack_socket_connected", "1 while this replica's Slack Socket Mode link is up",
                            value=1 if stats["connected"] else 0)
    yield CounterMetricFamily("costwarden_slack_socket_reconnects", "Socket Mode sessions opened after the first",
                              value=stats["reconnects"])
    envelopes = CounterMetricFamily("costwarden_slack_socket_envelopes", "Socket Mode envelopes received, by type",
                                    labels=["type"])
    for kind, n in sorted(stats["envelopes"].items()):
        envelopes.add_metric([kind], n)
    yield envelopes
    replies = CounterMetricFamily("costwarden_slack_socket_replies", "Replies posted to clickers' response_url",
                                  labels=["outcome"])
    for outcome, n in sorted(stats["replies"].items()):
        replies.add_metric([outcome], n)
    yield replies


def render(store: Store, counters: ProcessCounters, state: dict[str, Any],
           slack_socket: dict[str, Any] | None = None, queue: Callable[[], Iterable[Any]] | None = None) -> bytes:
    """The exposition text; `slack_socket` is SocketModeListener.stats() when Socket Mode is on, `queue`
    the fan-out queue's families in the scheduler and all roles."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, counters, state, slack_socket, queue))
    return generate_latest(registry)
