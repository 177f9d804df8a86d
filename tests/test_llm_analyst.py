"""The LLM analyst through the real litellm.completion path, answered by litellm's mock_response.

No test reaches a network: mock_response short-circuits inside litellm, and the price map is
the local file (LITELLM_LOCAL_MODEL_COST_MAP=True, set in conftest).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from costwarden.agent.config import LlmSettings
from costwarden.agent.llm.analyst import (
    Rationale,
    analyse,
    classify_requests,
    default_priority,
    explain_finding,
    heuristic_classify,
    prioritise,
)
from costwarden.agent.llm.client import LlmClient, llm_spend, month_start
from costwarden.agent.llm.grounding import numbers_in_text, ungrounded_numbers
from costwarden.agent.llm.redact import redact
from costwarden.agent.llm.samples import load_prompt_samples
from costwarden.agent.engine.nodes.explain import rationale
from costwarden.state.domain import Finding
from costwarden.state.models import LlmCallRow
from costwarden.state.store import Store
from costwarden.tools.llm_prices import PriceMap

MODEL = "openai/gpt-4o"


def reply(content: str, prompt_tokens: int = 1000, completion_tokens: int = 100) -> dict[str, Any]:
    """A full response for mock_response, so tests choose the token counts they check."""
    return {"model": "gpt-4o", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


@pytest.fixture
def store() -> Store:
    return Store("sqlite:///:memory:")


def client(store: Store, mocks: list[Any], **kw: Any) -> LlmClient:
    settings = LlmSettings(**{"model": MODEL, "retry_wait_seconds": 0, **kw})
    return LlmClient(settings, store, run_id="run_t", prices=PriceMap(), mock_responses=mocks)


def rows(store: Store) -> list[LlmCallRow]:
    with store.session() as s:
        return list(s.scalars(select(LlmCallRow).order_by(LlmCallRow.id)))


def finding(fid: str = "f1", waste: str = "1234.5678", **ev: Any) -> Finding:
    evidence = {"signal": "gpu_utilization", "instance_type": "p4d.24xlarge", "gpu_util_p95_pct": 2.5,
                "gpu_util_max_pct": 7.0, "lookback_days": 7, "hourly_price_usd": 32.7726, **ev}
    return Finding(id=fid, policy="idle-gpus", detector="idle-gpu", provider="aws", account="123456789012",
                   region="us-east-1", resource_id=f"i-{fid}", resource_type="aws.ec2", evidence=evidence,
                   monthly_waste_usd=Decimal(waste), severity="high")


# --- the client ------------------------------------------------------------------------------------
def test_structured_output_is_parsed_and_its_cost_is_tokens_times_price_map_prices(store):
    c = client(store, [reply('```json\n{"rationale": "GPUs idle for a week."}\n```', 12_344, 678)])
    out = c.structured("explain", system="s", user="u", schema=Rationale)
    assert out == Rationale(rationale="GPUs idle for a week.")

    [row] = rows(store)
    price = PriceMap().price(MODEL)
    assert price is not None and price.input_usd > 0
    expected = 12_344 * price.input_usd + 678 * price.output_usd
    assert (row.purpose, row.model, row.input_tokens, row.output_tokens, row.ok) == ("explain", MODEL, 12_344, 678, True)
    assert row.cost_usd == expected  # chosen so the 6-place money column holds it exactly
    assert c.spent == expected  # exact in memory; the column keeps 6 places
    assert row.run_id == "run_t" and row.latency_ms >= 0
    assert llm_spend(store, run_id="run_t") == row.cost_usd


def test_malformed_output_gets_one_retry_with_the_error_then_falls_back(store):
    c = client(store, ["Sure! Here is your rationale: it is idle.", '{"rationale": 5}'])
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    r = rows(store)
    assert [x.ok for x in r] == [False, False]  # exactly one retry, both recorded with their tokens
    assert all(x.error.startswith("invalid output") for x in r) and all(x.input_tokens > 0 for x in r)
    assert any("rejected twice" in w for w in c.warnings)
    assert c.available  # a bad answer is not an outage: later calls may still be made


def test_a_malformed_answer_then_a_valid_one_is_accepted(store, monkeypatch):
    import litellm

    sent: list[list[dict[str, str]]] = []
    real = litellm.completion
    monkeypatch.setattr(litellm, "completion", lambda **kw: sent.append(kw["messages"]) or real(**kw))
    c = client(store, ["not json", '{"rationale": "GPUs idle for a week."}'])
    assert c.structured("explain", system="s", user="u", schema=Rationale).rationale == "GPUs idle for a week."
    assert [x.ok for x in rows(store)] == [False, True]
    # the retry quotes the model's bad answer and the validation error back to it
    assert sent[1][-2] == {"role": "assistant", "content": "not json"}
    assert "rejected" in sent[1][-1]["content"] and "Invalid JSON" in sent[1][-1]["content"]


def test_rate_limits_are_retried_with_backoff(store):
    sleeps: list[float] = []
    settings = LlmSettings(model=MODEL, retry_wait_seconds=0.5, max_retries=2)
    c = LlmClient(settings, store, run_id="r", prices=PriceMap(), sleep=sleeps.append,
                  mock_responses=["litellm.RateLimitError", "litellm.RateLimitError", '{"rationale": "fine text here"}'])
    assert c.structured("explain", system="s", user="u", schema=Rationale) is not None
    assert [x.ok for x in rows(store)] == [False, False, True]
    assert "RateLimitError" in rows(store)[0].error
    assert sleeps == [0.5, 1.0]


def test_exhausted_retries_fall_back_and_a_down_model_is_not_called_again(store):
    c = client(store, ["litellm.RateLimitError"], max_retries=1)
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert c.available  # one failed call
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert not c.available  # two in a row: the model is down for this run
    assert len(rows(store)) == 4  # 2 logical calls x (1 try + 1 retry)
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert len(rows(store)) == 4
    [d] = [d for d in store.decisions(run_id="run_t") if d.stage == "llm"]
    assert d.decision == "model_unavailable"


def test_per_run_budget_breach_stops_further_calls(store):
    # gpt-4o: 100k input tokens cost ~$0.25, over a $0.10 run budget after the first call
    c = client(store, [reply('{"rationale": "GPUs idle for a week."}', 100_000, 50)], budget_per_run_usd=0.10)
    assert c.structured("explain", system="s", user="u", schema=Rationale) is not None
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert len(rows(store)) == 1
    assert not c.available and "per-run LLM budget" in (c.stopped or "")
    [d] = [d for d in store.decisions(run_id="run_t") if d.stage == "llm"]
    assert d.decision == "budget_exceeded" and "deterministic text" in d.reason
    assert any("budget" in w for w in c.warnings)


def test_the_budget_refuses_a_call_whose_worst_case_would_cross_it(store):
    # the estimate counts a full-length answer: 400 output tokens of gpt-4o ($0.004) > $0.001
    c = client(store, ['{"rationale": "x"}'], budget_per_run_usd=0.001)
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert rows(store) == []


def test_monthly_budget_counts_earlier_runs_of_this_month_only(store):
    now = datetime.now(timezone.utc)
    store.record_llm_call(run_id="old", purpose="explain", model=MODEL, input_tokens=1, output_tokens=1,
                          cost_usd=Decimal("50"), latency_ms=1, ok=True)
    with store.session() as s:  # last month's spend does not count against this month
        s.execute(update(LlmCallRow).values(created_at=month_start(now) - timedelta(days=1)))
    store.record_llm_call(run_id="earlier", purpose="explain", model=MODEL, input_tokens=1, output_tokens=1,
                          cost_usd=Decimal("4.999"), latency_ms=1, ok=True)
    ok = client(store, ['{"rationale": "GPUs idle for a week."}'], budget_per_month_usd=5.10, budget_per_run_usd=None)
    assert ok.structured("explain", system="s", user="u", schema=Rationale) is not None
    full = client(store, ['{"rationale": "GPUs idle for a week."}'], budget_per_month_usd=5.00, budget_per_run_usd=None)
    assert full.structured("explain", system="s", user="u", schema=Rationale) is None
    assert "monthly LLM budget" in (full.stopped or "")


def test_no_model_configured_makes_no_call(store):
    c = LlmClient(LlmSettings(), store, run_id="r", prices=PriceMap())
    assert not c.available
    assert c.structured("explain", system="s", user="u", schema=Rationale) is None
    assert rows(store) == []


# --- explain: grounding ------------------------------------------------------------------------------
def test_numbers_are_matched_after_normalisation():
    ev = [{"monthly_waste_usd": "1234.5678", "share": 0.423, "days": 7, "type": "p4d.24xlarge"}]
    assert ungrounded_numbers("Wastes $1,234.57/month ($1,234 rounded down), 42.3% simple over 7 days.", ev) == []
    assert ungrounded_numbers("A p4d.24xlarge in us-east-1 on gpt-4o with H100s.", ev) == []  # identifiers
    assert ungrounded_numbers("Wastes $9,999/month, 42% of 12 days.", ev) == ["9,999", "12"]
    assert numbers_in_text("costs $3.50, then 1,000.") == ["3.50", "1,000"]


def test_a_grounded_model_rationale_replaces_the_template(store):
    f = finding()
    text = "This p4d.24xlarge ran its GPUs at 2.5% (max 7%) for 7 days, wasting $1,234.57 a month."
    assert explain_finding(client(store, [json.dumps({"rationale": text})]), f, rationale(f)) == text


def test_a_rationale_with_invented_numbers_is_rejected_for_the_template(store):
    f = finding()
    made_up = json.dumps({"rationale": "This instance wastes $48,000 a month at 0% utilisation."})
    assert explain_finding(client(store, [made_up]), f, rationale(f)) is None
    r = rows(store)
    assert len(r) == 2 and "numbers not in the evidence: 48,000" in r[0].error


# --- prioritise ------------------------------------------------------------------------------------
def test_prioritise_accepts_a_permutation_and_rejects_anything_else(store):
    fs = [finding("a", "10"), finding("b", "500"), finding("c", "20")]
    assert default_priority(fs) == ["b", "c", "a"]
    good = client(store, ['{"order": ["c", "a", "b"]}'])
    assert prioritise(good, fs, {}) == ["c", "a", "b"]
    bad = client(store, ['{"order": ["c", "a", "delete-everything"]}'])
    assert prioritise(bad, fs, {}) is None


# --- classify and redaction ----------------------------------------------------------------------------
def test_redaction_removes_emails_keys_and_numbers():
    text = ("Refund order 48213 for jane.doe@example.com, card 4111 1111 1111 1111; "
            "key sk-proj-abcdefghijklmnop1234567890 and AKIAIOSFODNN7EXAMPLE, password: hunter2secret")
    out = redact(text)
    for leaked in ("48213", "jane.doe", "example.com", "4111", "sk-proj", "AKIA", "hunter2"):
        assert leaked not in out
    assert "<email>" in out and "<secret>" in out and "<num>" in out
    assert "Refund order" in out
    assert len(redact("x" * 5000)) < 2100


def test_classify_sends_a_capped_redacted_sample_and_counts_labels(store, monkeypatch):
    import litellm

    sent: list[str] = []
    real = litellm.completion
    monkeypatch.setattr(litellm, "completion",
                        lambda **kw: sent.append(kw["messages"][-1]["content"]) or real(**kw))
    prompts = [f"What is the status of order {1000 + i}? Reply to user{i}@shop.example" for i in range(30)]
    labels = {"labels": [{"i": i, "label": "simple" if i < 4 else "complex"} for i in range(5)]}
    c = client(store, [json.dumps(labels)])
    judged = classify_requests(c, "helpdesk", prompts, limit=5)
    assert (judged.sampled, judged.simple, judged.complex, judged.source) == (5, 4, 1, MODEL)
    payload = json.loads(sent[0])
    assert len(payload["requests"]) == 5  # capped
    assert "@" not in sent[0] and "1000" not in sent[0] and "<email>" in sent[0]


def test_classify_with_missing_labels_falls_back_to_the_heuristic(store):
    c = client(store, ['{"labels": [{"i": 0, "label": "simple"}]}'])
    assert classify_requests(c, "helpdesk", ["a", "b"], limit=5) is None
    h = heuristic_classify("helpdesk", ["short question?", "```python\n" + "x = 1\n" * 20 + "```"])
    assert (h.simple, h.complex, h.source) == (1, 1, "length heuristic")


def test_prompt_samples_are_per_feature_capped_stable_and_deduplicated(tmp_path):
    lines = []
    for i in range(50):
        lines.append({"attributes": {"costwarden.feature": "helpdesk", "gen_ai.input.messages": [
            {"role": "system", "content": "You are helpful."}, {"role": "user", "content": f"question {i % 40}"}]}})
        lines.append({"request_tags": ["feature:search"], "messages": [{"role": "user", "content": f"find {i}"}]})
        lines.append({"costwarden.feature": "other", "prompt": f"p{i}"})
        lines.append({"attributes": {"costwarden.feature": "helpdesk", "gen_ai.request.model": "gpt-4o"}})  # no text
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    got = load_prompt_samples([path], {"helpdesk", "search"}, limit=10)
    assert set(got) == {"helpdesk", "search"}
    assert len(got["helpdesk"]) == 10 and len(set(got["helpdesk"])) == 10
    assert all(t.startswith("question ") for t in got["helpdesk"])  # user messages only
    assert got == load_prompt_samples([tmp_path], {"helpdesk", "search"}, limit=10)  # same sample every run


def test_analyse_adds_the_judged_complexity_to_an_oversized_model_finding(store):
    f = Finding(id="om", policy="llm", detector="oversized-model", provider="llm", account="openai",
                region="global", resource_id="helpdesk", resource_type="llm.feature",
                evidence={"summary": "helpdesk: 80% of its gpt-4o requests are short."},
                monthly_waste_usd=Decimal("900"), severity="medium")
    mocks = ['{"rationale": "Most helpdesk requests on gpt-4o are short."}',
             json.dumps({"labels": [{"i": 0, "label": "simple"}, {"i": 1, "label": "simple"}]})]
    res = analyse(LlmSettings(model=MODEL, retry_wait_seconds=0), store, run_id="r", now=datetime.now(timezone.utc),
                  findings=[f], templates={"om": rationale(f)}, prices=PriceMap(),
                  prompt_samples={"helpdesk": ["reset my password", "where is my order 123"]}, mock_responses=mocks)
    assert res.texts["om"] == ("Most helpdesk requests on gpt-4o are short. Judged complexity of 2 sampled requests "
                               f"(redacted, by {MODEL}): 2 simple, 0 complex.")
    assert res.complexity["om"].simple_share == 1.0
    assert [d.decision for d in store.decisions(run_id="r") if d.stage == "classify"] == [MODEL]


# --- start-up cost -------------------------------------------------------------------------------------
def test_importing_the_daemon_and_the_analyst_does_not_import_litellm():
    code = ("import sys, costwarden.agent.cli.main, costwarden.agent.engine.graph, costwarden.agent.llm, "
            "costwarden.agent.llm.samples, costwarden.agent.engine.nodes.explain; "
            "assert 'litellm' not in sys.modules, 'litellm imported at start-up'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1], timeout=120)


def test_llm_settings_come_from_the_environment_and_hide_the_key(monkeypatch, no_costwarden_env):
    from costwarden.agent.config import load_settings

    monkeypatch.setenv("COSTWARDEN_LLM__MODEL", "litellm_proxy/gpt-4o-mini")
    monkeypatch.setenv("COSTWARDEN_LLM__API_BASE", "http://llm-proxy:4000")
    monkeypatch.setenv("COSTWARDEN_LLM__API_KEY", "sk-very-secret-proxy-key-123456")
    monkeypatch.setenv("COSTWARDEN_LLM__BUDGET_PER_RUN_USD", "0.25")
    s = load_settings().llm
    assert (s.enabled, s.model, s.api_base, s.budget_per_run_usd) == (True, "litellm_proxy/gpt-4o-mini",
                                                                      "http://llm-proxy:4000", 0.25)
    assert "very-secret" not in repr(s) and s.api_key.get_secret_value().startswith("sk-very")
    assert PriceMap().price(s.model) is not None  # the proxy prefix is priced as the model behind it
