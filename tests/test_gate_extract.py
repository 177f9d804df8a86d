"""The gate's pure parts: what counts as a setting in each file type, how versions pair, how
features are matched and what an unpriceable change looks like. No git, no files."""

from __future__ import annotations

from decimal import Decimal

from costwarden.policies.gate import GateOptions, GateSource, diff_settings, evaluate, extract, render_markdown
from costwarden.policies.gate.cost import UsageVolumes, match_feature
from costwarden.policies.gate.diff import cancel_moves
from costwarden.state.usage import TokenPrice, UsageGroup

SOURCE = GateSource(base="main", head="pr", base_commit="a" * 40, head_commit="b" * 40, compared_from="a" * 40,
                    files_changed=1, files_scanned=1)


def settings(path: str, text: str) -> dict[str, tuple[str, str, int]]:
    found, _ = extract(path, text)
    return {s.key: (s.kind, s.value, s.count) for s in found}


def test_terraform_blocks_counts_and_variables():
    tf = '''
/* a block comment with instance_type = "x1.32xlarge" */
variable "gpu_instance_type" {
  default = "g5.2xlarge"
}
resource "aws_instance" "web" {
  instance_type = var.gpu_instance_type   # resolved where the variable is defined
}
resource "aws_instance" "batch" {
  count         = var.workers
  instance_type = "c5.large"
  lifecycle { prevent_destroy = true }
  root_block_device {
    volume_size = 100
  }
}
resource "aws_sagemaker_endpoint_configuration" "ab" {
  production_variants {
    instance_type          = "ml.g5.xlarge"
    initial_instance_count = 2
  }
  production_variants {
    instance_type          = "ml.g4dn.xlarge"
    initial_instance_count = 1
  }
}
resource "google_compute_instance" "vm" {
  machine_type = "a2-highgpu-1g"
  # instance_type = "p5.48xlarge"  (commented out)
}
'''
    found, _ = extract("infra/main.tf", tf)
    by_key = {s.key: s for s in found}
    assert {k: (s.value, s.count, s.provider) for k, s in by_key.items()} == {
        "var.gpu_instance_type": ("g5.2xlarge", 1, "aws"),
        "aws_instance.batch": ("c5.large", 1, "aws"),
        "aws_sagemaker_endpoint_configuration.ab/production_variants[0]": ("ml.g5.xlarge", 2, "aws"),
        "aws_sagemaker_endpoint_configuration.ab/production_variants[1]": ("ml.g4dn.xlarge", 1, "aws"),
        "google_compute_instance.vm": ("a2-highgpu-1g", 1, "gcp"),
    }
    assert any("var.workers is not a literal" in n for n in by_key["aws_instance.batch"].notes)
    assert settings("prod.tfvars", 'instance_type = "p4d.24xlarge"\ninstance_count = 3\n') == {
        "(file)": ("instance", "p4d.24xlarge", 3)}


def test_code_literals_passed_as_a_model():
    py = '''import os
DEFAULT_MODEL = "gpt-4o-mini"

def summarize(client, text, model: str = "gpt-4o"):
    fallback = os.getenv("FALLBACK_MODEL", "claude-3-5-haiku-20241022")
    client.create(model="gpt-4.1-nano", messages=[])
    if model == "gpt-4":  # a comparison, not a setting
        pass
    # client.create(model="gpt-5")
    return Record.objects.filter(model="Invoice")  # an ORM model name is not an LLM

class Bot:
    def reply(self):
        return {"model": "gemini-2.0-flash", "temperature": 0}
'''
    assert settings("app/llm.py", py) == {
        "DEFAULT_MODEL#1": ("model", "gpt-4o-mini", 1),
        "summarize.model#1": ("model", "gpt-4o", 1),
        "summarize.FALLBACK_MODEL#1": ("model", "claude-3-5-haiku-20241022", 1),
        "summarize.model#2": ("model", "gpt-4.1-nano", 1),
        "Bot.reply.model#1": ("model", "gemini-2.0-flash", 1),
    }
    ts = 'const r = await openai.chat.completions.create({ model: "gpt-4o", stream: true });\n'
    assert settings("web/api.ts", ts) == {"model#1": ("model", "gpt-4o", 1)}


def test_structured_files_env_and_broken_yaml():
    litellm = '''model_list:
  - model_name: fast
    litellm_params:
      model: openai/gpt-4o-mini
  - model_name: smart
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
'''
    assert settings("proxy.yaml", litellm) == {
        "model_list[fast].litellm_params.model": ("model", "openai/gpt-4o-mini", 1),
        "model_list[smart].litellm_params.model": ("model", "anthropic/claude-3-5-sonnet-20241022", 1),
    }
    assert settings("cfg.json", '{"agents": [{"name": "triage", "modelId": "gpt-4o"}]}') == {
        "agents[triage].modelId": ("model", "gpt-4o", 1)}
    assert settings(".env.production", 'export CHAT_MODEL="gpt-4o" # prod\nDB_URL=postgres://x\n') == {
        "CHAT_MODEL": ("model", "gpt-4o", 1)}
    found, warnings = extract("chart/values.yaml", "llm:\n  model: {{ .Values.model }}\n  fallback_model: gpt-4o\n")
    assert [(s.key, s.value) for s in found] == [("fallback_model#1", "gpt-4o")]
    assert warnings and "line scan" in warnings[0]
    found, warnings = extract("bad.json", "{")
    assert found == [] and "not valid JSON" in warnings[0]


def test_annotations_scope_to_the_settings_below():
    text = "a_model: gpt-4o\n# costwarden.feature: search\nb_model: gpt-4o-mini\n# costwarden.feature=chat\nc_model: o3\n"
    found, _ = extract("x.yaml", text)
    assert {s.key: s.feature for s in found} == {"a_model": None, "b_model": "search", "c_model": "chat"}


def test_diff_pairs_by_key_then_value_then_order():
    old, _ = extract("x.yaml", "a:\n  model: gpt-4o\nb:\n  model: gpt-4o-mini\nc_model: o3\n")
    new, _ = extract("x.yaml", "b:\n  model: gpt-4o\nrenamed:\n  model: o3\nz_model: o1\n")
    changes = diff_settings("x.yaml", old, new)
    got = sorted((c.status, c.old.key if c.old else None, c.new.key if c.new else None,
                  c.old.value if c.old else None, c.new.value if c.new else None) for c in changes)
    # pass 1: b.model changed in place; pass 2: c_model -> renamed.model keeps o3 (no change);
    # pass 3: what is left pairs in order, a.model -> z_model
    assert got == [("modified", "a.model", "z_model", "gpt-4o", "o1"),
                   ("modified", "b.model", "b.model", "gpt-4o-mini", "gpt-4o")]
    moved = cancel_moves(diff_settings("a.env", extract("a.env", "M_MODEL=o3\n")[0], [])
                         + diff_settings("b.env", [], extract("b.env", "N_MODEL=o3\n")[0]))
    assert moved == []


def test_feature_match_by_path_prefers_the_longest_name():
    found, _ = extract("services/support-bot/summary/llm.py", 'MODEL = "gpt-4o"\n')
    assert match_feature(found[0], "services/support-bot/summary/llm.py", ["summary", "support_bot", "bot"]) == (
        "support_bot", "path")
    assert match_feature(found[0], "services/x/llm.py", ["summary"]) == (None, "")


def _price(model: str) -> TokenPrice | None:
    table = {"cheap": (Decimal("0.000001"), Decimal("0.000002")), "dear": (Decimal("0.00001"), Decimal("0.00002"))}
    if model not in table:
        return None
    return TokenPrice(model, table[model][0], table[model][1], None, "test table")


def _no_instances(provider: str, region: str, kind: str) -> tuple[Decimal | None, str]:
    return (Decimal(2), "test") if kind == "g5.xlarge" else (None, "unpriced")


def test_evaluate_threshold_new_spend_and_unpriced():
    swap = diff_settings("a.env", extract("a.env", "X_MODEL=cheap-1\n")[0], extract("a.env", "X_MODEL=dear-1\n")[0])

    def price(m: str) -> TokenPrice | None:
        return _price(m.split("-")[0])

    # default volume 1M in + 250k out: cheap $1.50, dear $15.00 -> +900%, the seeds' figure
    rep = evaluate(swap, model_price=price, instance_price=_no_instances, options=GateOptions(), source=SOURCE)
    assert rep.totals.delta_pct == 900.0 and rep.exceeded
    assert rep.headline == "Projected cost increase: +900% (+$13.50/month)"
    assert not evaluate(swap, model_price=price, instance_price=_no_instances,
                        options=GateOptions(threshold_pct=900), source=SOURCE).exceeded  # "above", not "at"
    assert not evaluate(swap, model_price=price, instance_price=_no_instances,
                        options=GateOptions(min_delta_usd=20), source=SOURCE).exceeded

    added = diff_settings("k.yaml", [], extract("k.yaml", GPU_DEPLOY.format(sel=""))[0])
    rep = evaluate(added, model_price=price, instance_price=_no_instances, options=GateOptions(), source=SOURCE)
    assert rep.unpriced == 1 and not rep.exceeded and "no per-GPU price" in rep.warnings[0]
    rep = evaluate(added, model_price=price, instance_price=_no_instances,
                   options=GateOptions(gpu_hourly_usd=1.5), source=SOURCE)
    assert rep.totals.new_monthly_usd == 1.5 * 730 * 3 and rep.totals.delta_pct is None and rep.exceeded
    assert rep.headline.startswith("Projected new cost: +$3,285.00/month")
    assert "| `k.yaml:" in render_markdown(rep)


GPU_DEPLOY = '''apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: vllm}}
spec:
  replicas: 3
  template:
    spec:
      {sel}containers:
        - name: vllm
          resources: {{requests: {{nvidia.com/gpu: "1"}}, limits: {{nvidia.com/gpu: 1}}}}
'''


def test_usage_volumes_scale_a_window_to_a_month():
    groups = [UsageGroup("search", "pro", "gpt-4o", "openai", "success", 10, 2, 1000, 500, 0, None),
              UsageGroup("search", "pro", "gpt-4o-mini", "openai", "success", 10, 2, 3000, 100, 0, None)]
    vols = UsageVolumes(groups, 10, "u.jsonl, 10 days")
    per_month = Decimal(730) / Decimal(24) / 10
    v = vols.volume("search", "openai/gpt-4o")
    assert v is not None and v.input_tokens == 1000 * per_month and v.observed
    total = vols.volume("search", "o3")  # the log has no o3 for this feature: all of its usage
    assert total is not None and total.input_tokens == 4000 * per_month
    assert vols.volume("other", None) is None and vols.features == ["search"]
