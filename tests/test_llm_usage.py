"""LLM usage ingest (OTel GenAI and LiteLLM spend logs) and the LiteLLM price map."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.tools.billing.focus import BillingInputError
from costwarden.tools.llm.usage import UsageLog
from costwarden.tools.llm_prices import ModelPriceOverride, PriceMap, load_price_map, normalise_model


def write_lines(path: Path, records: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def otel(ts: str, model: str, inp: int, out: int, **attrs) -> dict:
    return {"timestamp": ts, "attributes": {"gen_ai.provider.name": "openai", "gen_ai.request.model": model,
                                            "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out,
                                            **attrs}}


def test_otel_and_litellm_lines_aggregate_into_priced_groups(tmp_path):
    f = write_lines(tmp_path / "spans.jsonl", [
        otel("2025-03-03T10:00:00Z", "gpt-4o", 1000, 100, **{"costwarden.feature": "helpdesk",
             "costwarden.tier": "free", "costwarden.tenant": "t1", "costwarden.outcome": "success"}),
        {"timestamp": 1740996000, "gen_ai.system": "openai", "gen_ai.request.model": "openai/gpt-4o",
         "gen_ai.usage.input_tokens": "1000", "gen_ai.usage.output_tokens": 100, "costwarden.feature": "helpdesk",
         "costwarden.tier": "free", "costwarden.tenant": "t2", "error.type": "timeout"},
        {"request_id": "r1", "spend": 0.02, "prompt_tokens": 2000, "completion_tokens": 0,
         "model": "gpt-4o-mini", "end_user": "t3", "request_tags": ["feature:search", "tier:pro"],
         "status": "success", "startTime": "2025-03-04T00:00:00"},
        "",
    ])
    log = UsageLog([f])
    assert log.count() == 3
    groups = {(g.feature, g.outcome): g for g in log.groups(prices=PriceMap())}
    ok = groups[("helpdesk", "success")]
    # gpt-4o: $2.50 / 1M input, $10 / 1M output in LiteLLM's map
    assert (ok.requests, ok.users, ok.input_tokens, ok.cost_usd) == (1, 1, 1000, Decimal("0.0035"))
    failed = groups[("helpdesk", "failure")]
    assert failed.model == "gpt-4o" and failed.cost_usd == Decimal("0.0035")  # prefix normalised, same price
    search = groups[("search", "success")]
    assert (search.tier, search.provider, search.users) == ("pro", "unknown", 1)
    assert [d.day.isoformat() for d in log.daily()] == ["2025-03-03", "2025-03-04"]


@pytest.mark.parametrize("line,problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"timestamp": "2025-01-01T00:00:00Z", "gen_ai.usage.input_tokens": 5}', "no model"),
    ('{"gen_ai.request.model": "gpt-4o"}', "no time"),
    ('{"timestamp": "yesterday", "gen_ai.request.model": "gpt-4o"}', "unreadable time"),
    ('{"timestamp": "2025-01-01T00:00:00Z", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": "many"}',
     "input tokens is not a non-negative integer"),
])
def test_bad_line_names_file_and_line_number(tmp_path, line, problem):
    f = write_lines(tmp_path / "u.jsonl", [otel("2025-01-01T00:00:00Z", "gpt-4o", 1, 1), "", line])
    with pytest.raises(BillingInputError) as e:
        UsageLog([f])
    assert str(e.value).startswith(f"{f}:3: {problem}")


def test_repeats_and_size_histogram(tmp_path):
    recs = [otel("2025-01-01T00:00:00Z", "gpt-4o", 100, 10, **{"costwarden.feature": "faq",
            "costwarden.prompt_hash": "same", "costwarden.prompt_prefix_hash": "sys",
            "costwarden.prompt_prefix_tokens": 80}) for _ in range(5)]
    recs.append(otel("2025-01-01T00:00:00Z", "gpt-4o", 5000, 900, **{"costwarden.feature": "faq"}))
    log = UsageLog([write_lines(tmp_path / "r.jsonl", recs)])
    (rep,) = log.repeats()
    assert (rep.hashed_requests, rep.repeat_requests, rep.repeat_input_tokens, rep.repeat_output_tokens) == (5, 4, 400, 40)
    assert rep.repeat_prefix_tokens == 4 * 80
    cells = {(c.input_le, c.output_le): c.requests for c in log.size_cells()}
    assert cells == {(128, 64): 5, (8192, 1024): 1}


def test_price_map_loads_without_importing_litellm_and_normalises_names():
    assert "gpt-4o-mini" in load_price_map()
    pm = PriceMap()
    assert normalise_model("openai/gpt-4o-mini") == "gpt-4o-mini"
    assert pm.price("openai/gpt-4o-mini") == pm.price("gpt-4o-mini") != None  # noqa: E711
    assert pm.price("gpt-4o-mini").input_usd == Decimal("1.5E-7")
    assert pm.price("no-such-model-xyz") is None  # unpriced, never a silent zero


def test_overrides_win_over_the_price_map():
    pm = PriceMap({"gpt-4o": ModelPriceOverride(input_per_1m=1, output_per_1m=4, cache_read_per_1m=0.5)})
    p = pm.price("openai/gpt-4o")
    assert (p.input_usd, p.output_usd, p.cache_read_usd) == (Decimal("0.000001"), Decimal("0.000004"), Decimal("5E-7"))
    assert "override" in p.source
    # 1,000 input of which 400 cached, 100 output
    assert p.cost(1000, 100, 400) == Decimal("0.000600") + Decimal("0.0002") + Decimal("0.0004")


def test_price_map_import_is_not_litellm(tmp_path):
    """Loading the map in a fresh interpreter must not import litellm (4-5 s)."""
    import subprocess
    import sys

    code = ("import sys; from tools.llm_prices import PriceMap; PriceMap().price('gpt-4o'); "
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
