"""explain: a short rationale per finding, quoting only numbers from its evidence.

Deterministic templates are the floor; an LLM analyst can replace the text, never the decision.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agent.context import SweepContext
from agent.nodes.state import SweepState
from state.domain import Finding


def rationale(f: Finding) -> str:
    ev = f.evidence
    days = ev.get("lookback_days")
    price = ev.get("hourly_price_usd")
    cost = f"${price:,.4f}".rstrip("0").rstrip(".") + "/h" if price is not None else "an unknown price (unpriced)"
    if ev.get("signal") == "gpu_utilization":
        pct = next((v for k, v in ev.items() if k.startswith("gpu_util_p")), None)
        return (f"{ev.get('instance_type')} GPUs ran at {pct}% (95th percentile, max {ev.get('gpu_util_max_pct')}%) "
                f"over {days} days while billing {cost}: ${f.monthly_waste_usd:,.2f}/month for idle accelerators.")
    if "network_mb_per_hour" in ev:
        cpu = next((v for k, v in ev.items() if k.startswith("cpu_util_p")), None)
        return (f"{ev.get('instance_type')} reports no GPU metric; CPU at {cpu}% (95th percentile) and "
                f"{ev.get('network_mb_per_hour')} MB/h of network over {days} days suggest idle GPUs "
                f"billing {cost}: ${f.monthly_waste_usd:,.2f}/month.")
    if ev.get("summary"):  # detectors without a template here write their own one-line summary
        return str(ev["summary"])
    return f"{f.detector} on {f.resource_id}: ${f.monthly_waste_usd:,.2f}/month."


def explain(state: SweepState, runtime: Runtime[SweepContext]) -> dict[str, Any]:
    findings = [Finding.from_dict(d) for d in state.get("findings", [])]
    texts = {f.id: rationale(f) for f in findings}
    for f in findings:
        f.rationale = texts[f.id]
    runtime.context.store.set_rationales(texts)
    return {"findings": [f.to_dict() for f in findings]}
