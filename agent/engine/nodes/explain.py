"""explain: a short rationale per finding, quoting only numbers from its evidence, and the
digest order of the run's findings.

Deterministic templates are the floor; when `llm.model` is set the LLM analyst (agent/llm) may
replace the text, judge sampled request complexity for oversized-model findings, and order the
digest (`priority`). It never changes a decision: the findings list keeps its order (which the
guard's max_actions_per_run counts along) and the guard reads none of what the model writes.
Any analyst failure is a warning; the run completes on templates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from costwarden.agent.engine.context import SweepContext
from costwarden.agent.engine.nodes.state import SweepState
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.detectors.words import evidence_percentile, percentile_name
from costwarden.state.domain import Finding

if TYPE_CHECKING:
    from langgraph.runtime import Runtime  # LangGraph passes it; a one-shot audit never imports it


def rationale(f: Finding) -> str:
    """The deterministic text, worded from the parameters the detector used (its evidence)."""
    ev = f.evidence
    days = ev.get("lookback_days")
    over = f"over {day_words(days)}" if isinstance(days, (int, float)) else "over the lookback"
    price = ev.get("hourly_price_usd")
    cost = f"${price:,.4f}".rstrip("0").rstrip(".") + "/h" if price is not None else "an unknown price (unpriced)"
    waste = (f"${f.monthly_waste_usd:,.2f}/month" if price is not None
             else "unpriced (no hourly price, so no monthly figure)")
    if ev.get("signal") == "gpu_utilization":
        p, pct = evidence_percentile(ev, "gpu_util")
        stat = percentile_name(p) if p is not None else "percentile"
        peak = f", max {ev.get('gpu_util_max_pct')}%" if p != 100 else ""
        return (f"{ev.get('instance_type')} GPUs ran at {pct}% ({stat}{peak}) "
                f"{over} while billing {cost}: {waste} for idle accelerators.")
    if "network_mb_per_hour" in ev:
        p, cpu = evidence_percentile(ev, "cpu_util")
        stat = percentile_name(p) if p is not None else "percentile"
        return (f"{ev.get('instance_type')} reports no GPU metric; CPU at {cpu}% ({stat}) and "
                f"{ev.get('network_mb_per_hour')} MB/h of network (measured) {over} suggest idle GPUs "
                f"billing {cost}: {waste}.")
    if ev.get("summary"):  # detectors without a template here write their own one-line summary
        return str(ev["summary"])
    return f"{f.detector} on {f.resource_id}: ${f.monthly_waste_usd:,.2f}/month."


def explain(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    ctx = runtime.context
    findings = [Finding.from_dict(d) for d in state.get("findings", [])]
    texts = {f.id: rationale(f) for f in findings}
    warnings: list[str] = []
    from costwarden.agent.llm.analyst import default_priority  # light: litellm is imported only by a completion

    priority = default_priority(findings)
    llm = ctx.settings.llm
    if llm.enabled and findings:
        try:
            texts, priority, warnings = _analyse(ctx, state["run_id"], findings, texts)
        except Exception as exc:  # noqa: BLE001 - the analyst is never on the critical path
            from costwarden.agent.llm.redact import redact_secrets

            warnings = [f"llm analyst failed ({exc.__class__.__name__}: {redact_secrets(str(exc))[:200]}); "
                        "deterministic text used"]
    for f in findings:
        f.rationale = texts[f.id]
    ctx.store.set_rationales(texts)
    return {"findings": [f.to_dict() for f in findings], "priority": priority, "warnings": warnings}


def _analyse(ctx: SweepContext, run_id: str, findings: list[Finding],
             templates: dict[str, str]) -> tuple[dict[str, str], list[str], list[str]]:
    from costwarden.agent.llm.analyst import analyse
    from costwarden.agent.llm.samples import load_prompt_samples
    from costwarden.tools.llm_prices import PriceMap

    llm = ctx.settings.llm
    samples: dict[str, list[str]] = {}
    features = {f.resource_id for f in findings if f.detector == "oversized-model"}
    if features and llm.prompt_samples_paths and llm.classify_sample_size > 0:
        samples = load_prompt_samples(llm.prompt_samples_paths, features, llm.classify_sample_size)
    result = analyse(llm, ctx.store, run_id=run_id, now=ctx.now, findings=findings, templates=templates,
                     prices=PriceMap(ctx.settings.billing.price_overrides), prompt_samples=samples)
    ctx.progress(f"explain: {result.explained_by_model} of {len(findings)} rationales by {llm.model}")
    return result.texts, result.priority, result.warnings
