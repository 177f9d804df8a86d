"""oversized-model: a feature sending short, simple requests to a flagship model (the "helpdesk trap").

"Simple" is measured, not guessed: a request whose prompt and answer are both short (at most
`max_input_tokens` in and `max_output_tokens` out) is the kind routing studies (RouteLLM) move
to a small model at ~95% of the quality. The collector provides a histogram of request sizes per
model; the requests in the short buckets are repriced at the first model of `allowed_models`
(your list, in order of preference) that is at least `min_price_ratio` times cheaper. The
saving is real token counts x price-map prices, never an assumed percentage, and the evidence
lists those token counts. Findings rank by that saving (the sweep sorts by monthly waste).

Bucket edges are fixed by the collector; a threshold between two edges counts only the buckets
wholly under it, so the estimate errs low.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.registry import detectors
from costwarden.state.domain import DAYS_PER_MONTH, Finding, Observation


class OversizedModelParams(DetectorParams):
    allowed_models: list[str] = Field(default_factory=lambda: ["gpt-4o-mini"], min_length=1,
                                      description="Cheaper models you allow, in order of preference.")
    max_input_tokens: int = Field(1024, ge=1, description="A simple request has at most this many input tokens...")
    max_output_tokens: int = Field(256, ge=1, description="...and at most this many output tokens.")
    min_price_ratio: float = Field(4.0, ge=1, description="Flagship = input price at least this many times the target's.")
    min_simple_share: float = Field(0.3, ge=0, le=1, description="Share of a model's requests that must be simple.")
    min_monthly_saving_usd: float = Field(50.0, ge=0, description="No finding below this saving.")


@detectors.register("oversized-model")
class OversizedModel(Detector):
    resource_types = ("llm.feature",)
    permissions = ()  # reads files and the price map, no cloud API
    Params = OversizedModelParams
    params: OversizedModelParams

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        attrs = obs.resource.attrs
        window_days = float(attrs.get("window_days") or 0)
        if window_days <= 0:
            return None
        simple: dict[str, list[int]] = {}  # model -> [requests, input, output, cache_read]
        total: dict[str, int] = {}
        for model, ile, ole, n, i, o, c in attrs.get("sizes", []):
            total[model] = total.get(model, 0) + n
            if ile is not None and ole is not None and ile <= p.max_input_tokens and ole <= p.max_output_tokens:
                acc = simple.setdefault(model, [0, 0, 0, 0])
                for k, v in enumerate((n, i, o, c)):
                    acc[k] += v
        lines = []
        saving = Decimal(0)
        for model, (n, i, o, c) in sorted(simple.items()):
            if model in p.allowed_models or total[model] == 0 or n / total[model] < p.min_simple_share:
                continue
            price = ctx.token_price(model)
            if price is None:
                ctx.warnings.append(f"no token price for model {model} (feature {obs.resource.resource_id}): "
                                    "unpriced, not checked for oversizing")
                continue
            target = next((t for t in p.allowed_models
                           if (tp := ctx.token_price(t)) is not None and tp.input_usd * Decimal(str(p.min_price_ratio))
                           <= price.input_usd), None)
            if target is None:
                continue
            tprice = ctx.token_price(target)
            assert tprice is not None
            now_cost, then_cost = price.cost(i, o, c), tprice.cost(i, o, c)
            saved = now_cost - then_cost
            saving += saved
            lines.append({
                "model": model, "route_to": target,
                "simple_requests": n, "model_requests": total[model], "simple_share": round(n / total[model], 3),
                "simple_input_tokens": i, "simple_output_tokens": o, "simple_cache_read_tokens": c,
                "cost_now_usd": float(round(now_cost, 4)), "cost_routed_usd": float(round(then_cost, 4)),
                "price_source": price.source, "route_to_price_source": tprice.source,
            })
        monthly = saving * DAYS_PER_MONTH / Decimal(str(window_days))
        if not lines or monthly < Decimal(str(p.min_monthly_saving_usd)):
            return None
        evidence = {
            "signal": "simple_requests_on_flagship_model",
            "window_days": window_days,
            "simple_if": f"input <= {p.max_input_tokens} and output <= {p.max_output_tokens} tokens",
            "models": lines,
            "window_saving_usd": float(round(saving, 2)),
        }
        f = self.finding(obs, ctx, evidence=evidence, monthly_waste=monthly, confidence="medium")
        top = max(lines, key=lambda x: x["cost_now_usd"] - x["cost_routed_usd"])
        f.rationale = f.evidence["summary"] = (f"{obs.resource.resource_id}: {top['simple_share']:.0%} of its {top['model']} requests are short "
                       f"({top['simple_requests']:,} requests, {top['simple_input_tokens']:,} input / "
                       f"{top['simple_output_tokens']:,} output tokens in {day_words(window_days)}); routing them to "
                       f"{top['route_to']} saves ${float(monthly):,.2f}/month at price-map prices.")
        return f
