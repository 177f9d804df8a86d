"""Issue #22 item 4: output-token limits and system prompts, priced with the feature's observed
volume (requests/month from a usage file), through the real CLI on real git repositories.

Expected figures come from the shipped LiteLLM price map and the usage file written here, never
hard-coded: requests/month = records x (730 / 24) / 10 days.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.agent.cli.main import main
from costwarden.policies.gate.diff import Change
from costwarden.policies.gate.extract import extract
from costwarden.policies.gate.limitcost import price_limit_change
from costwarden.policies.gate.setting import Setting
from costwarden.tools.llm_prices import PriceMap
from tests.test_gate import Git, gate

PER_MONTH = Decimal(730) / Decimal(24) / Decimal(10)  # the usage file spans 10 days
RECORDS = 3_000


def usage_file(path: Path, feature: str, model: str, out_per_reply: int, inp: int = 2_000) -> Path:
    """RECORDS replies of `out_per_reply` tokens over ten days (first and last hour included)."""
    start, step = datetime(2025, 5, 1, tzinfo=timezone.utc), timedelta(hours=239) / (RECORDS - 1)
    stamps = [(start + i * step).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for i in range(RECORDS)]
    rows = [{"timestamp": ts, "attributes": {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": inp,
                                             "gen_ai.usage.output_tokens": out_per_reply,
                                             "costwarden.feature": feature}}
            for ts in stamps]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


PROXY = """model_list:
  - model_name: summarize
    litellm_params:
      model: openai/gpt-4o
      max_tokens: {limit}
  - model_name: classify
    litellm_params:
      model: openai/gpt-4o-mini
"""


def _out_price(model: str) -> Decimal:
    p = PriceMap().price(model)
    assert p is not None
    return p.output_usd


def test_raised_limit_at_the_observed_mean_is_priced_as_the_ceiling(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"proxy/config.yaml": PROXY.format(limit=1024)}, "base")
    g.commit({"proxy/config.yaml": PROXY.format(limit=4096)}, "raise")
    usage = usage_file(tmp_path / "u.jsonl", "summarize", "gpt-4o", out_per_reply=1000)  # replies hit ~1024

    code, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)

    [c] = doc["changes"]
    assert c["kind"] == "limit" and c["feature"] == "summarize" and c["priced"]
    expected = RECORDS * PER_MONTH * (4096 - 1024) * _out_price("openai/gpt-4o")
    assert c["delta_monthly_usd"] == round(float(expected), 2)
    assert c["basis"].startswith("ceiling:") and "observed" in c["basis"]
    assert any(n.startswith("output-token limit: at most +$") for n in c["notes"])
    assert code == 1


def test_cut_limit_uses_min_of_limit_and_observed_mean(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"proxy/config.yaml": PROXY.format(limit=4096)}, "base")
    g.commit({"proxy/config.yaml": PROXY.format(limit=512)}, "cut")
    usage = usage_file(tmp_path / "u.jsonl", "summarize", "gpt-4o", out_per_reply=1000)

    code, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)

    [c] = doc["changes"]
    expected = RECORDS * PER_MONTH * (512 - 1000) * _out_price("openai/gpt-4o")  # min(512, 1000) - min(4096, 1000)
    assert c["delta_monthly_usd"] == round(float(expected), 2) < 0
    assert c["basis"].startswith("estimate:") and "ceiling" in c["basis"]
    assert code == 0


def test_raised_limit_far_above_the_replies_is_estimated_below_the_ceiling(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"proxy/config.yaml": PROXY.format(limit=1024)}, "base")
    g.commit({"proxy/config.yaml": PROXY.format(limit=4096)}, "raise")
    usage = usage_file(tmp_path / "u.jsonl", "summarize", "gpt-4o", out_per_reply=200)

    _, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)

    [c] = doc["changes"]
    assert c["basis"].startswith("estimate:") and c["delta_monthly_usd"] == 0
    ceiling = RECORDS * PER_MONTH * (4096 - 1024) * _out_price("openai/gpt-4o")
    assert f"at most +${ceiling:,.2f}/month" in " ".join(c["notes"])


PY = '''"""Summaries."""
SYSTEM_PROMPT = """{prompt}"""


def summarize(client, text):
    return client.chat.completions.create(
        model="gpt-4o", max_tokens={limit},
        messages=[{{"role": "system", "content": SYSTEM_PROMPT}}, {{"role": "user", "content": text}}])
'''
BASE_PROMPT = "You summarize support tickets. Keep it short."


def test_python_prompt_growth_and_limit_in_one_call(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"services/summarize/llm.py": PY.format(prompt=BASE_PROMPT, limit=800)}, "base")
    longer = BASE_PROMPT + " Cite the ticket id, the customer's plan and every product named." * 6
    g.commit({"services/summarize/llm.py": PY.format(prompt=longer, limit=600)}, "head")
    usage = usage_file(tmp_path / "u.jsonl", "summarize", "gpt-4o", out_per_reply=700)

    _, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)

    by_kind = {c["kind"]: c for c in doc["changes"]}
    assert set(by_kind) == {"prompt", "limit"}
    price = PriceMap().price("gpt-4o")
    assert price is not None
    prompt = by_kind["prompt"]
    grown = Decimal(len(longer) - len(BASE_PROMPT))
    assert prompt["delta_monthly_usd"] == round(float(RECORDS * PER_MONTH * grown / 4 * price.input_usd), 2) > 0
    assert "4 characters per token" in " ".join(prompt["notes"]) and "uncached" in " ".join(prompt["notes"])
    limit = by_kind["limit"]  # 800 -> 600 with 700-token replies: min(600, 700) - min(800, 700)
    assert limit["delta_monthly_usd"] == round(float(RECORDS * PER_MONTH * (600 - 700) * price.output_usd), 2)


def test_without_usage_the_change_is_reported_with_no_dollar_figure(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"proxy/config.yaml": PROXY.format(limit=1024)}, "base")
    g.commit({"proxy/config.yaml": PROXY.format(limit=4096)}, "raise")

    code, doc = gate(g, "--base", "HEAD~1", capsys=capsys)
    [c] = doc["changes"]
    assert not c["priced"] and c["delta_monthly_usd"] is None
    assert any("volume unknown: configure billing.usage_paths" in n for n in c["notes"])

    assert main(["gate", "--repo", str(g.path), "--base", "HEAD~1"]) == code
    md = capsys.readouterr().out
    row = next(line for line in md.splitlines() if "output-token limit" in line)
    assert "$0.00" not in row and "**unpriced**" in row
    assert "volume unknown: configure billing.usage_paths" in md


def test_usage_paths_from_the_config_give_the_volume(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"proxy/config.yaml": PROXY.format(limit=1024)}, "base")
    g.commit({"proxy/config.yaml": PROXY.format(limit=4096)}, "raise")
    (tmp_path / "usage").mkdir()
    usage = usage_file(tmp_path / "usage" / "u.jsonl", "summarize", "gpt-4o", out_per_reply=1000)
    cfg = tmp_path / "costwarden.yaml"
    cfg.write_text(f"billing:\n  usage_paths: ['{usage.parent}/*.jsonl']\n")

    _, doc = gate(g, "--base", "HEAD~1", "--config", str(cfg), capsys=capsys)

    [c] = doc["changes"]
    assert c["priced"] and c["delta_monthly_usd"] > 0


def test_no_finding_on_renames_comments_or_same_size_prompts(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"services/summarize/llm.py": PY.format(prompt=BASE_PROMPT, limit=800),
              "proxy/config.yaml": PROXY.format(limit=1024)}, "base")
    same_size = BASE_PROMPT.replace("short", "brief")  # 5 letters for 5 letters
    g.commit({"services/summarize/llm.py": "# a comment\n" + PY.format(prompt=same_size, limit=800),
              "proxy/config.yaml": "# proxy for the summarizer\n" + PROXY.format(limit=1024)}, "cosmetic")

    _, doc = gate(g, "--base", "HEAD~1", capsys=capsys)
    assert doc["changes"] == []


def test_extraction_rules():
    """Keys in any case, prose only for prompts, no double count of a named prompt."""
    yaml_text = ("agent:\n  model: claude-3-5-haiku-20241022\n  maxOutputTokens: 300\n  system: linux\n"
                 "  system_prompt: You triage alerts.\n  max_tokens: true\n")
    found = {(s.kind, s.key): s for s in extract("config/agent.yaml", yaml_text)[0]}
    assert found[("limit", "agent.maxOutputTokens")].value == "300"
    assert found[("limit", "agent.maxOutputTokens")].model == "claude-3-5-haiku-20241022"
    assert found[("prompt", "agent.system_prompt")].value == str(len("You triage alerts."))
    assert ("prompt", "agent.system") not in found and ("limit", "agent.max_tokens") not in found
    toml_text = '[llm.digest]\nmodel = "gpt-4o-mini"\nmax_completion_tokens = 256\n'
    [lim] = [s for s in extract("settings.toml", toml_text)[0] if s.kind == "limit"]
    assert (lim.key, lim.value, lim.model) == ("llm.digest.max_completion_tokens", "256", "gpt-4o-mini")
    py = ('import anthropic\nc = anthropic.Anthropic()\n'
          'c.messages.create(model="claude-3-5-sonnet-20241022", max_tokens=1024, system="Be terse and exact.")\n'
          'cfg = {"model": "gemini-1.5-pro", "generation_config": {"max_output_tokens": 2048}}\n')
    got = sorted((s.kind, s.value) for s in extract("bot.py", py)[0] if s.kind != "model")
    assert got == [("limit", "1024"), ("limit", "2048"), ("prompt", str(len("Be terse and exact.")))]


def test_usage_given_but_no_feature_matched_says_so(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"proxy/config.yaml": PROXY.format(limit=1024)}, "base")
    g.commit({"proxy/config.yaml": PROXY.format(limit=4096)}, "raise")
    usage = usage_file(tmp_path / "u.jsonl", "unrelated", "gpt-4o", out_per_reply=100)
    _, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)
    [c] = doc["changes"]
    assert not c["priced"] and any("no feature of the usage data matches" in n for n in c["notes"])


def test_annotated_prompt_constant_is_read():
    py = 'SUPPORT_SYSTEM_PROMPT: str = "You answer billing questions politely."\n'
    [s] = extract("bot.py", py)[0]
    text = "You answer billing questions politely."
    assert (s.kind, s.key, s.value) == ("prompt", "SUPPORT_SYSTEM_PROMPT", str(len(text)))


@settings(max_examples=150, deadline=None)
@given(old=st.integers(1, 20_000), new=st.integers(1, 20_000), mean=st.integers(1, 20_000),
       reqs=st.integers(1, 10**7))
def test_limit_estimate_never_exceeds_the_ceiling_and_keeps_its_sign(old, new, mean, reqs):
    """Invariant: the row's figure has the sign of (new - old) and is at most the ceiling in size."""
    price = PriceMap().price("gpt-4o")
    assert price is not None
    ch = Change("a.yaml", Setting("limit", "k", str(old)), Setting("limit", "k", str(new)))
    vol = SimpleNamespace(requests=Decimal(reqs), output_tokens=Decimal(reqs * mean), source="test")
    o, n, basis, notes = price_limit_change(ch, vol, "gpt-4o", price, [])
    assert o is not None and n is not None
    delta, ceiling = n - o, Decimal(reqs) * (new - old) * price.output_usd
    assert abs(delta) <= abs(ceiling)
    assert delta == 0 or (delta > 0) == (new > old)
    assert basis.split(":")[0] in ("ceiling", "estimate") and notes
