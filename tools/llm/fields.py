"""The usage fields Costwarden reads, with every spelling each has in the wild.

One list for every reader: the DuckDB file reader (flat and OTLP JSON lines), the OTLP/HTTP
receiver and the LiteLLM database source all map their input onto these names, so a new
spelling is added here once. The first spelling present wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# canonical field -> OpenTelemetry attribute keys (span attributes win over resource attributes)
OTEL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "request_model": ("gen_ai.request.model",),
    "response_model": ("gen_ai.response.model",),
    "operation": ("gen_ai.operation.name",),
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens",),
    "reported_cost": ("gen_ai.usage.cost.amount",),
    "feature": ("costwarden.feature",),
    "tenant": ("costwarden.tenant", "enduser.id"),
    "tier": ("costwarden.tier",),
    "outcome": ("costwarden.outcome",),
    "error_type": ("error.type",),
    "prompt_hash": ("costwarden.prompt_hash",),
    "prefix_hash": ("costwarden.prompt_prefix_hash",),
    "prefix_tokens": ("costwarden.prompt_prefix_tokens",),
}


@dataclass(frozen=True)
class UsageAggregate:
    """Usage already aggregated by its source (LiteLLM's daily tables, GROUP BY pushed down).

    `hour` is the UTC start of the period (a daily table gives midnight); `tenants` is the
    distinct-tenant count of the cell when the source knows it, else None; `tenant_ids` the
    tenants themselves when the source sent them, `tenant_sketch` their HyperLogLog registers
    (tools/llm/sketch.py) when it had too many to send. Either merges with other cells and hours;
    a bare count does not, and the readers never add counts up.
    """

    hour: datetime
    feature: str
    tier: str
    model: str
    provider: str
    outcome: str
    requests: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reported_cost: float | None
    tenants: int | None
    # the cell's distinct tenants themselves, when the source sends them (few enough): kept as a set
    # in the rollup, so a tenant seen in several cells or hours counts once
    tenant_ids: tuple[str, ...] | None = None
    # the cell's HyperLogLog registers, when it has more tenants than a set holds: one integer per
    # non-empty register, register * 64 + rank (tools/llm/sketch.py pack / unpack)
    tenant_sketch: tuple[int, ...] | None = None
