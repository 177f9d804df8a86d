"""Price a change of an output-token limit or of a system prompt's size with the feature's
observed volume.

Why these formulas:
- A limit bounds each reply, it does not set its length. The *ceiling* of the change is
  requests/month x (new - old limit) x output price: what it costs if every reply uses the whole
  limit. The usage data also gives the mean reply (output tokens / requests), so the estimate is
  requests x (min(new, mean) - min(old, mean)) x output price: a limit raised far above the replies
  changes little, a limit cut below them saves. When the mean is within 10% of a raised old limit,
  replies were being cut off and may grow to the new one: then the ceiling is the estimate. Which
  figure is used is said in the report, with the ceiling beside an estimate.
- A system prompt is sent with every request: (new - old) characters / 4 (about 4 characters per
  token for English text) x requests/month x input price, assumed uncached (with prompt caching the
  cache-read price applies and the figure is lower; it is said when the model has one).
- Without a feature volume nothing is priced (never $0): "volume unknown".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from costwarden.policies.gate.diff import Change
from costwarden.state.usage import TokenPrice

CHARS_PER_TOKEN = 4
NO_VOLUME = "volume unknown: configure billing.usage_paths (or pass --usage) to price it"


class Volume(Protocol):
    requests: Decimal
    output_tokens: Decimal
    source: str


def _per_m(usd_per_token: Decimal) -> str:
    return f"${usd_per_token * 10**6:,.2f}/M"


def price_limit_change(ch: Change, vol: Volume | None, model: str, price: TokenPrice | None,
                       warnings: list[str], feature: str | None = None,
                       usage_given: bool = False) -> tuple[Decimal | None, Decimal | None, str, list[str]]:
    """(old monthly, new monthly, basis, notes) of a limit or prompt change; None costs when unpriced."""
    s = ch.setting
    if vol is None or vol.requests <= 0:
        if not usage_given:
            return None, None, "", [NO_VOLUME]
        why = f"feature `{feature}` has no requests in the usage data" if feature else \
            "no feature of the usage data matches this file or key (annotate it: `costwarden.feature: NAME`)"
        return None, None, "", [f"volume unknown: {why}"]
    if not model or price is None:
        warnings.append(f"{s.key} ({ch.file}:{s.line}): no model with a price for this "
                        f"{'limit' if s.kind == 'limit' else 'prompt'}: change listed as unpriced")
        return None, None, "no model price", []
    reqs = vol.requests
    if s.kind == "prompt":
        old_c = Decimal(ch.old.value) if ch.old else Decimal(0)
        new_c = Decimal(ch.new.value) if ch.new else Decimal(0)
        rate = price.input_usd
        cost = [reqs * c / CHARS_PER_TOKEN * rate for c in (old_c, new_c)]
        notes = [f"system prompt: {CHARS_PER_TOKEN} characters per token assumed, and an uncached prompt"
                 + (f" (cached, `{model}` reads it at {_per_m(price.cache_read_usd)})"
                    if price.cache_read_usd is not None else "")]
        basis = (f"{reqs:,.0f} requests/month x ({new_c:,.0f} - {old_c:,.0f}) chars / {CHARS_PER_TOKEN} x "
                 f"`{model}` input {_per_m(rate)}; {vol.source}")
        return cost[0], cost[1], basis, notes
    if ch.old is None or ch.new is None:
        note = ("limit added: the replies were bounded by the model's own maximum before" if ch.old is None else
                "limit removed: replies are now bounded by the model's own maximum")
        return None, None, f"{note}; not priced", [f"{note}; not priced"]
    old_l, new_l = Decimal(ch.old.value), Decimal(ch.new.value)
    rate = price.output_usd
    ceiling = reqs * (new_l - old_l) * rate
    mean = vol.output_tokens / reqs
    head = f"{reqs:,.0f} requests/month x ({new_l:,.0f} - {old_l:,.0f}) tokens x `{model}` output {_per_m(rate)}"
    bound = (f"at most +${ceiling:,.2f}/month (not every reply hits the limit)" if ceiling >= 0 else
             f"saves at most ${-ceiling:,.2f}/month (only replies longer than the new limit get shorter)")
    if new_l > old_l and mean >= old_l * Decimal("0.9"):
        basis = f"ceiling: {head}; observed mean reply {mean:,.0f} tokens is at the old limit; {vol.source}"
        return reqs * old_l * rate, reqs * new_l * rate, basis, [f"output-token limit: {bound}"]
    basis = (f"estimate: {reqs:,.0f} requests/month x (min({new_l:,.0f}, {mean:,.0f}) - min({old_l:,.0f}, "
             f"{mean:,.0f})) tokens, observed mean reply {mean:,.0f} tokens; ceiling {head}; {vol.source}")
    return reqs * min(old_l, mean) * rate, reqs * min(new_l, mean) * rate, basis, [f"output-token limit: {bound}"]
