"""Provider-neutral records for token economics, shared by tools/ (which produce them from files)
and policies/ (whose pure functions compute unit costs and findings from them).

They live in state/ because both sides need them and dependencies point one way:
`tools -> state` and `policies -> state`, never `policies -> tools`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class TokenPrice:
    """USD per token for one model; `source` says where the figure came from (price map or config)."""

    model: str
    input_usd: Decimal
    output_usd: Decimal
    cache_read_usd: Decimal | None
    source: str

    def cost(self, input_tokens: int, output_tokens: int, cache_read_tokens: int = 0) -> Decimal:
        """Cost of one or many requests. `input_tokens` includes cached tokens (OTel GenAI's
        convention), which are billed at the cache-read price when the model has one."""
        cached = min(cache_read_tokens, input_tokens)
        cache_price = self.cache_read_usd if self.cache_read_usd is not None else self.input_usd
        return ((input_tokens - cached) * self.input_usd + cached * cache_price
                + output_tokens * self.output_usd)


@dataclass(frozen=True)
class UsageGroup:
    """Aggregated LLM usage of one (feature, tier, model, outcome) cell over a window.

    `cost_usd` is None when the model is unpriced: economics then reports the cell as
    unpriced instead of counting it as free.
    """

    feature: str
    tier: str
    model: str
    provider: str
    outcome: str
    requests: int
    users: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: Decimal | None
