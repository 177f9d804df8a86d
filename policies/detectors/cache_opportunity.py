"""cache-opportunity: repeated identical prompts (response caching) and long repeated prompt
prefixes (provider prompt caching).

Works off hashes the application puts on its spans (`costwarden.prompt_hash` for the whole
prompt, `costwarden.prompt_prefix_hash` + `costwarden.prompt_prefix_tokens` for the shared
prefix); prompts themselves never leave the application. Without those attributes there is no
evidence and the detector stays quiet.

- Response cache: every repeat of an exact prompt after its first sighting in the window could
  be served from a cache; the saving is those repeats' real tokens at the model's price times
  `expected_hit_rate` (exact-match caches lose some repeats to expiry; semantic caches report
  61-69% hit rates).
- Prompt cache: prefix tokens sent again after the first time, minus the tokens the provider
  already served from its cache, billed at the cache-read price instead of the input price.
  Only models with a cache-read price in the price map count.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.registry import detectors
from costwarden.state.domain import DAYS_PER_MONTH, Finding, Observation


class CacheOpportunityParams(DetectorParams):
    min_repeat_share: float = Field(0.1, ge=0, le=1, description="Share of hashed requests that repeat.")
    expected_hit_rate: float = Field(0.9, gt=0, le=1, description=(
        "Share of repeats a response cache would really serve."))
    min_monthly_saving_usd: float = Field(20.0, ge=0, description="No finding below this saving.")


@detectors.register("cache-opportunity")
class CacheOpportunity(Detector):
    resource_types = ("llm.feature",)
    permissions = ()  # reads files and the price map, no cloud API
    Params = CacheOpportunityParams
    params: CacheOpportunityParams

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        attrs = obs.resource.attrs
        window_days = float(attrs.get("window_days") or 0)
        if window_days <= 0:
            return None
        lines = []
        saving = Decimal(0)
        for model, r in sorted(attrs.get("repeats", {}).items()):
            price = ctx.token_price(model)
            if price is None:
                if r["repeat_requests"] or r["repeat_prefix_tokens"]:
                    ctx.warnings.append(f"no token price for model {model} (feature {obs.resource.resource_id}): "
                                        "cache saving unpriced")
                continue
            line: dict[str, object] = {"model": model, "hashed_requests": r["hashed_requests"]}
            share = r["repeat_requests"] / r["hashed_requests"] if r["hashed_requests"] else 0.0
            if share >= p.min_repeat_share and r["repeat_requests"]:
                response = price.cost(r["repeat_input_tokens"], r["repeat_output_tokens"]) * \
                    Decimal(str(p.expected_hit_rate))
                saving += response
                line.update({"repeat_requests": r["repeat_requests"], "repeat_share": round(share, 3),
                             "repeat_input_tokens": r["repeat_input_tokens"],
                             "repeat_output_tokens": r["repeat_output_tokens"],
                             "response_cache_saving_usd": float(round(response, 4))})
            uncached = max(0, r["repeat_prefix_tokens"] - r["cache_read_tokens"])
            if uncached and price.cache_read_usd is not None and price.cache_read_usd < price.input_usd:
                prefix = uncached * (price.input_usd - price.cache_read_usd)
                saving += prefix
                line.update({"repeat_prefix_tokens": r["repeat_prefix_tokens"],
                             "already_cached_tokens": r["cache_read_tokens"],
                             "prompt_cache_saving_usd": float(round(prefix, 4))})
            if len(line) > 2:
                line["price_source"] = price.source
                lines.append(line)
        monthly = saving * DAYS_PER_MONTH / Decimal(str(window_days))
        if not lines or monthly < Decimal(str(p.min_monthly_saving_usd)):
            return None
        evidence = {"signal": "repeated_prompts", "window_days": window_days, "models": lines,
                    "expected_hit_rate": p.expected_hit_rate, "window_saving_usd": float(round(saving, 2))}
        f = self.finding(obs, ctx, evidence=evidence, monthly_waste=monthly, confidence="medium")
        repeats = sum(int(x.get("repeat_requests", 0)) for x in lines)  # type: ignore[call-overload]
        prefix_tokens = sum(int(x.get("repeat_prefix_tokens", 0)) for x in lines)  # type: ignore[call-overload]
        f.rationale = f.evidence["summary"] = (f"{obs.resource.resource_id}: {repeats:,} repeated prompts and {prefix_tokens:,} repeated "
                       f"prefix tokens in {day_words(window_days)}; caching saves ${float(monthly):,.2f}/month.")
        return f
