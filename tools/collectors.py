"""Resource type -> read-only collector. A new resource type is one registered function.

A collector yields Observations lazily (inventory page -> batched metrics), reports what it
could not read in `CollectReport.errors`, and never raises for one region's or account's
failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from costwarden.state.domain import MetricRequest, Observation, Resource
from costwarden.state.registry import Registry


@dataclass
class CollectReport:
    inventoried: int = 0
    candidates: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. usage of a model with no known price


@dataclass(frozen=True)
class CollectPlan:
    """What the policy's detectors need: which resources, which metrics, how far back."""

    wants: Callable[[Resource], bool]
    metrics: list[MetricRequest]
    lookback_hours: int
    now: datetime
    # Several policies read through one plan (tools/sharing.py): the metrics each resource needs, the
    # union over the policies that want it, so a resource only one of them wants is not queried for
    # the others' metrics. None: `metrics` for every candidate. A collector may ignore it (it then
    # fetches `metrics` for every candidate, which is more queries but the same answers).
    metrics_for: Callable[[Resource], list[MetricRequest]] | None = None


@dataclass(frozen=True)
class Scope:
    regions: list[str]
    # The sweep's inventory (tools/inventory.py): reads that several collectors make alike are made
    # once per sweep. None outside a sweep: every read is made.
    inventory: Any = None


Collector = Callable[[Any, Scope, CollectPlan, CollectReport], Iterator[Observation]]


@dataclass(frozen=True)
class CollectorSpec:
    resource_type: str
    provider: str
    collect: Collector
    # A collector that reads files rather than a cloud API (billing exports, token usage) builds its
    # input with this, called as source(settings, providers), instead of receiving the provider's cloud
    # clients; `providers` (the sweep's, or None outside a sweep) lets a read it makes through a cloud
    # API (Cost Explorer) count in the sweep's call log.
    source: Callable[[Any, Any], Any] | None = None
    # The cloud permissions its reads use (AWS `service:Action`, GCP `service.resource.verb`); () for a
    # collector that reads files. None means undeclared: the registry test fails on it, and so does
    # `costwarden policies permissions` (policies/permissions.py). Settings-driven reads (Cost Explorer,
    # s3:// paths, organizations) are declared in policies/permissions.py SETTINGS_PERMISSIONS instead.
    permissions: tuple[str, ...] | None = None


T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Fixed-size batches of a stream, so a collector never holds a whole fleet at once."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def window(now: datetime, lookback_hours: int) -> tuple[datetime, datetime]:
    """The lookback as whole hours ending at the last full hour, the same for every source."""
    end = now.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=lookback_hours), end


collectors: Registry[CollectorSpec] = Registry("resource type", modules=(
    "costwarden.tools.aws.collect", "costwarden.tools.billing.collect", "costwarden.tools.llm.collect",
    "costwarden.tools.llm.collect_tiers",  # llm.tier
    "costwarden.tools.gcp.collect",  # no Google SDK import until a project is configured
    "costwarden.tools.prometheus",  # k8s.gpu-node
))


def register_collector(spec: CollectorSpec) -> CollectorSpec:
    return collectors.add(spec.resource_type, spec)


def get_collector(resource_type: str) -> CollectorSpec:
    """The collector of that resource type; UnknownName (a KeyError) listing the known types otherwise."""
    return collectors.get(resource_type)


def resource_types() -> list[str]:
    return collectors.names()
