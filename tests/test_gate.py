"""The pull-request FinOps gate, end to end: real git repositories in tmp_path, the real CLI.

Expected figures are computed here from the shipped price sources (LiteLLM's price map, the
EC2/SageMaker tables), never hard-coded, so a price-map update cannot break the tests and a
wrong formula cannot pass them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from costwarden.agent.cli.main import main
from costwarden.tools.llm_prices import PriceMap
from costwarden.tools.pricing import price_table

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IN, DEFAULT_OUT = 1_000_000, 250_000


# -- helpers -----------------------------------------------------------------------------------------
class Git:
    """A throwaway repository driven by the real git binary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self("init", "-q", "-b", "main")
        self("config", "user.name", "Gate Test")
        self("config", "user.email", "gate@example.com")
        self("config", "commit.gpgsign", "false")

    def __call__(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    def write(self, files: dict[str, str | None]) -> None:
        for rel, text in files.items():
            p = self.path / rel
            if text is None:
                p.unlink()
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        self.write(files)
        self("add", "-A")
        self("commit", "-q", "--allow-empty", "-m", message)
        return self("rev-parse", "HEAD")


def gate(repo: Git | Path, *args: str, capsys: pytest.CaptureFixture) -> tuple[int, dict]:
    """Run `costwarden gate --format json` in-process; returns (exit code, JSON report)."""
    path = repo.path if isinstance(repo, Git) else repo
    code = main(["gate", "--repo", str(path), "--format", "json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def gate_md(repo: Git, *args: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = main(["gate", "--repo", str(repo.path), *args])
    return code, capsys.readouterr().out


def model_cost(model: str, inp: int | Decimal = DEFAULT_IN, out: int | Decimal = DEFAULT_OUT) -> Decimal:
    price = PriceMap().price(model)
    assert price is not None, model
    return inp * price.input_usd + out * price.output_usd


def ec2_hourly(kind: str) -> Decimal:
    return Decimal(str(price_table("aws", kind)["regions"]["us-east-1"][kind]))


WRAPPER = '''"""An API wrapper, as in the seeds' expensive library update."""


class Assistant:
    def __init__(self, client, model: str = "{model}"):
        self.client = client
        self.model = model

    def ask(self, text):
        return self.client.chat.completions.create(model=self.model, messages=[{{"role": "user", "content": text}}])
'''


@pytest.fixture
def seed_repo(tmp_path: Path) -> Git:
    """The seeds' scenario: a library update changes the wrapper's default gpt-4o-mini -> gpt-4-turbo."""
    g = Git(tmp_path / "repo")
    g.commit({"assistant/wrapper.py": WRAPPER.format(model="gpt-4o-mini"), "README.md": "# app\n"}, "base")
    g("checkout", "-q", "-b", "feature")
    g.commit({"assistant/wrapper.py": WRAPPER.format(model="gpt-4-turbo"), "README.md": "# app, v2\n"}, "bump")
    return g


# -- the seeds' model swap ---------------------------------------------------------------------------
def test_seed_model_swap_is_flagged_with_the_right_percentage(seed_repo, capsys):
    old, new = model_cost("gpt-4o-mini"), model_cost("gpt-4-turbo")
    expected_pct = round(float((new - old) / old * 100), 1)

    code, doc = gate(seed_repo, "--base", "main", "--head", "feature", capsys=capsys)

    assert code == 1  # far above the default 20% threshold
    assert doc["exceeded"] is True
    [change] = doc["changes"]
    assert (change["file"], change["kind"], change["old"], change["new"]) == (
        "assistant/wrapper.py", "model", "gpt-4o-mini", "gpt-4-turbo")
    assert change["line"] == 5
    assert change["old_monthly_usd"] == round(float(old), 2)
    assert change["new_monthly_usd"] == round(float(new), 2)
    assert change["delta_pct"] == expected_pct
    assert doc["totals"]["delta_pct"] == expected_pct
    assert "default volume: 1M input + 250k output" in change["basis"]
    assert doc["source"]["files_changed"] == 2 and doc["source"]["files_scanned"] == 1  # README is not read


def test_seed_model_swap_markdown_is_a_pr_comment(seed_repo, capsys):
    old, new = model_cost("gpt-4o-mini"), model_cost("gpt-4-turbo")
    pct = float((new - old) / old * 100)

    code, md = gate_md(seed_repo, "--base", "main", "--head", "feature", capsys=capsys)

    assert code == 1
    assert md.startswith("<!-- costwarden-gate -->\n")
    assert f"Projected cost increase: {pct:+,.0f}%" in md
    assert "approval required" in md
    row = next(line for line in md.splitlines() if line.startswith("| `assistant/wrapper.py:5`"))
    assert "`gpt-4o-mini` -> `gpt-4-turbo`" in row and f"${float(new - old):,.2f}" in row
    assert "1,000,000 input + 250,000 output tokens/month" in md  # the stated default volume


def test_output_file_and_threshold(seed_repo, tmp_path, capsys):
    out = tmp_path / "comment.md"
    code = main(["gate", "--repo", str(seed_repo.path), "--base", "main", "--head", "feature",
                 "--threshold-pct", "1000000", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 0  # the same +5,000% change passes a threshold set above it
    assert captured.out == ""
    assert "within the threshold" in captured.err
    assert "Within the 1,000,000% threshold" in out.read_text()


# -- renames ---------------------------------------------------------------------------------------
def test_renames_that_keep_the_model_are_not_flagged(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    common = "".join(f"  option_{i}: {i}\n" for i in range(12))
    g.commit({
        "llm.yaml": "summarize:\n  default_model: gpt-4o-mini\n" + common,
        "old/models.toml": '[fast]\nmodel = "gpt-4.1-mini"\n',
        "app/client.py": 'def run(c):\n    return c.create(model="gpt-4o", messages=[])\n',
        ".env": "OPENAI_MODEL=claude-3-5-haiku-20241022\n",
        "infra/gpu.tf": 'resource "aws_instance" "a" {\n  instance_type = "g5.xlarge"\n}\n',
    }, "base")
    g.commit({
        "llm.yaml": None,  # moved (git sees a rename) and its key renamed; the model stays
        "config/llm.yaml": "summarize:\n  model: gpt-4o-mini\n" + common,
        "old/models.toml": None,  # moved and rewritten (git sees a delete and an add); same model
        "new/settings.toml": '# fast path\n[routing.fast]\nretries = 3\nllm_model = "gpt-4.1-mini"\n',
        "app/client.py": 'def run_summary(c):\n    return c.create(messages=[], model="gpt-4o")\n',
        ".env": "LLM_MODEL=claude-3-5-haiku-20241022\n",
        "infra/gpu.tf": 'resource "aws_instance" "renamed" {\n  instance_type = "g5.xlarge" # same box\n}\n',
    }, "rename")

    code, doc = gate(g, "--base", "HEAD~1", "--head", "HEAD", capsys=capsys)

    assert code == 0
    assert doc["changes"] == []
    assert doc["headline"] == "No cost-relevant changes"
    assert doc["source"]["files_changed"] == 6  # R + D + A + 3 M


def test_renamed_key_with_a_new_model_is_still_flagged(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"llm.yaml": "chat:\n  default_model: gpt-4o-mini\n"}, "base")
    g.commit({"llm.yaml": "chat:\n  model: gpt-4o\n"}, "head")
    code, doc = gate(g, "--base", "HEAD~1", capsys=capsys)
    [c] = doc["changes"]
    assert (c["old"], c["new"], c["status"]) == ("gpt-4o-mini", "gpt-4o", "modified")
    assert "key `chat.default_model` -> `chat.model`" in c["summary"]
    assert code == 1


# -- Terraform and Kubernetes ------------------------------------------------------------------------
TF = '''resource "aws_instance" "trainer" {{
  ami           = "ami-0123456789"
  instance_type = "{kind}"
  count         = 2

  tags = {{
    Team = "ml"   # costwarden.feature: training
  }}
}}
'''


def test_terraform_g5_to_p4d_is_priced_from_the_shipped_table(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"infra/main.tf": TF.format(kind="g5.xlarge")}, "base")
    g.commit({"infra/main.tf": TF.format(kind="p4d.24xlarge")}, "head")
    old = ec2_hourly("g5.xlarge") * 730 * 2
    new = ec2_hourly("p4d.24xlarge") * 730 * 2

    code, doc = gate(g, "--base", "HEAD~1", "--head", "HEAD", capsys=capsys)

    [c] = doc["changes"]
    assert (c["kind"], c["key"], c["old"], c["new"], c["old_count"], c["new_count"]) == (
        "instance", "aws_instance.trainer", "g5.xlarge", "p4d.24xlarge", 2, 2)
    assert c["old_monthly_usd"] == round(float(old), 2)
    assert c["new_monthly_usd"] == round(float(new), 2)
    assert c["delta_monthly_usd"] == round(float(new - old), 2)
    assert c["delta_pct"] == round(float((new - old) / old * 100), 1)
    assert "as of" in c["basis"] and "730 h/month" in c["basis"]
    assert code == 1


def test_sagemaker_variant_count_and_k8s_gpus(tmp_path, capsys):
    sm = '''resource "aws_sagemaker_endpoint_configuration" "llm" {{
  name = "llm"
  production_variants {{
    variant_name           = "primary"
    model_name             = aws_sagemaker_model.llm.name
    initial_instance_count = {n}
    instance_type          = "ml.g5.xlarge"
  }}
}}
'''
    k8s = '''apiVersion: apps/v1
kind: Deployment
metadata:
  name: embedder
spec:
  replicas: {r}
  template:
    spec:
      nodeSelector:
        node.kubernetes.io/instance-type: g5.12xlarge
      containers:
        - name: server
          resources:
            limits:
              nvidia.com/gpu: 2
'''
    g = Git(tmp_path / "repo")
    g.commit({"sm.tf": sm.format(n=1), "deploy/embedder.yaml": k8s.format(r=1)}, "base")
    g.commit({"sm.tf": sm.format(n=3), "deploy/embedder.yaml": k8s.format(r=2)}, "head")
    ml_g5 = Decimal(str(price_table("aws", "ml.g5.xlarge")["regions"]["us-east-1"]["ml.g5.xlarge"]))
    per_gpu = ec2_hourly("g5.12xlarge") / 4  # g5.12xlarge carries 4 GPUs

    code, doc = gate(g, "--base", "HEAD~1", capsys=capsys)

    by_kind = {c["kind"]: c for c in doc["changes"]}
    assert by_kind["instance"]["delta_monthly_usd"] == round(float(ml_g5 * 730 * 2), 2)
    assert (by_kind["gpu"]["old_count"], by_kind["gpu"]["new_count"]) == (2, 4)
    assert by_kind["gpu"]["new_monthly_usd"] == round(float(per_gpu * 4 * 730), 2)
    deltas = [abs(c["delta_monthly_usd"]) for c in doc["changes"]]
    assert deltas == sorted(deltas, reverse=True) and deltas[0] > deltas[1]  # largest first
    assert code == 1


# -- unknown models --------------------------------------------------------------------------------
def test_unknown_model_is_a_clear_warning_and_an_unpriced_line(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"settings.toml": '[llm]\nmodel = "gpt-4o-mini"\n', "web/chat.ts":
              'export const reply = (c) => c.chat({ model: "gpt-4o-mini", messages: [] });\n'}, "base")
    g.commit({"settings.toml": '[llm]\nmodel = "gpt-7-hyperion-preview"\n', "web/chat.ts":
              'export const reply = (c) => c.chat({ model: "gpt-4o", messages: [] });\n'}, "head")

    code, doc = gate(g, "--base", "HEAD~1", capsys=capsys)

    assert doc["unpriced"] == 1
    unknown = next(c for c in doc["changes"] if c["new"] == "gpt-7-hyperion-preview")
    assert unknown["priced"] is False and unknown["new_monthly_usd"] is None and unknown["delta_pct"] is None
    assert unknown["old_monthly_usd"] == round(float(model_cost("gpt-4o-mini")), 2)
    assert any("gpt-7-hyperion-preview" in w and "not in the LiteLLM price map" in w for w in doc["warnings"])
    assert doc["changes"][-1] is not None and doc["changes"][-1]["priced"] is False  # unpriced rows last
    # the total covers only what could be priced: the TypeScript swap
    ts = model_cost("gpt-4o") - model_cost("gpt-4o-mini")
    assert doc["totals"]["delta_monthly_usd"] == round(float(ts), 2)
    assert code == 1

    code, md = gate_md(g, "--base", "HEAD~1", "--threshold-pct", "1000000", capsys=capsys)
    assert code == 0 and "**unpriced**" in md and "gpt-7-hyperion-preview" in md
    code, _ = gate(g, "--base", "HEAD~1", "--threshold-pct", "1000000", "--fail-on-unpriced", capsys=capsys)
    assert code == 1


# -- observed volume ---------------------------------------------------------------------------------
def _usage(path: Path, feature: str, model: str, inp: int, out: int) -> Path:
    """Two records, on the first and the last hour of a ten-day window: the totals are 10 days' usage."""
    rows = [{"timestamp": ts, "attributes": {"gen_ai.request.model": model, "gen_ai.usage.input_tokens": inp // 2,
                                             "gen_ai.usage.output_tokens": out // 2, "costwarden.feature": feature}}
            for ts in ("2025-05-01T00:00:00Z", "2025-05-10T23:00:00Z")]
    rows.append({"timestamp": "2025-05-05T00:00:00Z", "attributes": {
        "gen_ai.request.model": model, "gen_ai.usage.input_tokens": 10**9, "gen_ai.usage.output_tokens": 10**9,
        "costwarden.feature": "another-feature"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_usage_volume_drives_the_delta(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"services/summarize/client.py": 'MODEL = "gpt-4o-mini"\n'}, "base")
    g.commit({"services/summarize/client.py": 'MODEL = "gpt-4o"\n'}, "head")
    usage = _usage(tmp_path / "spans.jsonl", "summarize", "gpt-4o-mini", 40_000_000, 8_000_000)
    per_month = Decimal(730) / Decimal(24) / Decimal(10)
    inp, out = Decimal(40_000_000) * per_month, Decimal(8_000_000) * per_month
    expected = model_cost("gpt-4o", inp, out) - model_cost("gpt-4o-mini", inp, out)

    code, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)

    [c] = doc["changes"]
    assert c["feature"] == "summarize"
    assert c["delta_monthly_usd"] == round(float(expected), 2)
    assert "observed" in c["basis"] and "feature `summarize`" in c["basis"]
    assert code == 1

    # the same change without usage: the default volume, a different figure
    _, doc2 = gate(g, "--base", "HEAD~1", capsys=capsys)
    assert doc2["changes"][0]["delta_monthly_usd"] != c["delta_monthly_usd"]


def test_feature_annotation_picks_the_usage(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    body = "# costwarden.feature: support-bot\nllm:\n  model: {m}\n"
    g.commit({"config/app.yaml": body.format(m="gpt-4o")}, "base")
    g.commit({"config/app.yaml": body.format(m="gpt-4o-mini")}, "head")
    usage = _usage(tmp_path / "u.jsonl", "support-bot", "gpt-4o", 2_000_000, 1_000_000)

    code, doc = gate(g, "--base", "HEAD~1", "--usage", str(usage), capsys=capsys)

    [c] = doc["changes"]
    assert c["feature"] == "support-bot" and c["delta_monthly_usd"] < 0
    per_month = Decimal(730) / Decimal(24) / Decimal(10)
    inp, out = Decimal(2_000_000) * per_month, Decimal(1_000_000) * per_month
    assert c["old_monthly_usd"] == round(float(model_cost("gpt-4o", inp, out)), 2)
    assert doc["headline"].startswith("Projected cost decrease: -")
    assert code == 0  # savings never fail the gate


# -- merge base -----------------------------------------------------------------------------------------
def test_changes_on_the_base_branch_are_not_blamed_on_the_pr(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"a.env": "FAST_MODEL=gpt-4o-mini\n", "b.env": "SMART_MODEL=gpt-4o\n"}, "base")
    g("checkout", "-q", "-b", "pr")
    g.commit({"b.env": "SMART_MODEL=gpt-4.1\n"}, "pr change")
    g("checkout", "-q", "main")
    g.commit({"a.env": "FAST_MODEL=gpt-4-turbo\n"}, "someone else's change on main")

    code, doc = gate(g, "--base", "main", "--head", "pr", capsys=capsys)

    assert [c["file"] for c in doc["changes"]] == ["b.env"]
    assert code == 0  # gpt-4o -> gpt-4.1 is cheaper; main's gpt-4-turbo would have failed the gate
    assert doc["source"]["compared_from"] != g("rev-parse", "main")


# -- exit codes -----------------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_"))}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "costwarden.agent.cli", "gate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_exit_codes_from_the_real_command(seed_repo, tmp_path):
    ok = _cli("--base", "main", "--head", "main", cwd=seed_repo.path)
    assert ok.returncode == 0 and "No cost-relevant changes" in ok.stdout

    over = _cli("--base", "main", "--head", "feature", cwd=seed_repo.path)
    assert over.returncode == 1 and "Projected cost increase" in over.stdout

    for args, message in [
        (("--base", "no-such-branch"), "no-such-branch: no such revision"),
        (("--base", "main", "--repo", str(tmp_path / "plain")), "not a git repository"),
        (("--base", "main", "--usage", str(tmp_path / "missing.jsonl")), "missing.jsonl: no such file"),
        (("--base", "main", "--usage", str(tmp_path / "bad.jsonl")), "bad.jsonl:1: not valid JSON"),
        (("--base", "main", "--threshold-pct", "-5"), "--threshold-pct"),
    ]:
        (tmp_path / "plain").mkdir(exist_ok=True)
        (tmp_path / "bad.jsonl").write_text("{oops\n")
        proc = _cli(*args, "--head", "feature", cwd=seed_repo.path)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("costwarden: error: ") and message in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_the_gate_stays_light(seed_repo):
    """No litellm, boto3 or langgraph import: the gate runs on every push and must start fast."""
    code = ("import sys\nfrom costwarden.agent.cli.main import main\n"
            f"rc = main(['gate', '--repo', {str(seed_repo.path)!r}, '--base', 'main', '--head', 'feature', "
            "'--format', 'json'])\n"
            "heavy = [m for m in ('litellm', 'boto3', 'botocore', 'langgraph', 'duckdb') if m in sys.modules]\n"
            "sys.stderr.write(f'{rc} {heavy}')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stderr.strip() == "1 []", proc.stderr
