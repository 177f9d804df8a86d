"""Issue #22: real-world public files, trimmed into tests/data/gate/public/ (source, commit and
license in each file's header), read by the gate: what each one configures is found, and a pull
request that changes it is priced. Expected prices come from the shipped tables, not literals.
"""

from __future__ import annotations

import json

from costwarden.agent.cli.main import main
from costwarden.policies.gate.extract import extract
from costwarden.tools.llm_prices import PriceMap
from tests.test_gate import Git
from tests.test_gate_formats import corpus, found, monthly
from tests.test_gate_limits import PER_MONTH, RECORDS, usage_file

SAM = "public/sam-sagemaker-summary-stack.yaml"
POD = "public/k8s-scheduling-gpus-pod.yaml"
SDK = "public/sagemaker_hf_deploy.py"
LITELLM = "public/litellm_proxy_server_config.yaml"
BOTO3 = "public/aws_doc_create_instance.py"
HELM = "public/vllm-chart-values.yaml"


def _gate(g: Git, capsys) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    code = main(["gate", "--repo", str(g.path), "--base", "HEAD~1", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_every_public_file_names_its_source_and_license():
    for rel in (SAM, POD, SDK, LITELLM, BOTO3, HELM):
        head = "\n".join(corpus(rel).splitlines()[:3])
        assert "commit " in head and any(x in head for x in ("Apache-2.0", "MIT License", "CC BY 4.0")), rel


def test_sam_template_endpoint_uses_both_parameter_defaults(tmp_path, capsys):
    settings, warnings = extract(SAM, corpus(SAM))
    assert warnings == []
    [s] = settings
    assert (s.key, s.value, s.count) == (
        "Resources.LCASMProvisionedSummarizationEndpointConfig.ProductionVariants[AllTraffic]", "ml.m5.xlarge", 1)
    assert "the default of parameter `InstanceType`" in s.notes and "count 1 from `InitialInstanceCount`" in s.notes
    g = Git(tmp_path / "repo")
    g.commit({"stack.yaml": corpus(SAM)}, "base")
    bigger = corpus(SAM).replace("Default: ml.m5.xlarge", "Default: ml.g5.2xlarge").replace(
        "    Default: 1\n", "    Default: 2\n", 1)
    g.commit({"stack.yaml": bigger}, "GPU endpoint, two instances")
    code, doc = _gate(g, capsys)
    [c] = doc["changes"]
    assert (c["old"], c["new"], c["old_count"], c["new_count"]) == ("ml.m5.xlarge", "ml.g5.2xlarge", 1, 2)
    assert c["delta_monthly_usd"] == round(monthly("ml.g5.2xlarge", 2) - monthly("ml.m5.xlarge", 1), 2)
    assert code == 1


def test_kubernetes_docs_gpu_pod_counts_one_gpu_on_an_unknown_node_type(tmp_path, capsys):
    assert found(POD) == {"Pod/cuda-vector-add": ("gpu", "", 1)}
    g = Git(tmp_path / "repo")
    g.commit({"k8s/pod.yaml": corpus(POD)}, "base")
    g.commit({"k8s/pod.yaml": corpus(POD).replace("nvidia.com/gpu: 1", "nvidia.com/gpu: 4")}, "four GPUs")
    _, doc = _gate(g, capsys)
    [c] = doc["changes"]  # the accelerator label names no instance type: unpriced, never $0
    assert (c["kind"], c["old_count"], c["new_count"], c["priced"]) == ("gpu", 1, 4, False)


def test_sagemaker_sdk_deploy_script(tmp_path, capsys):
    got = found(SDK)
    assert got["deploy.instance_type#1"] == ("instance", "ml.g5.2xlarge", 1)
    assert got["HF_MODEL_ID#1"] == ("model", "WizardLM/WizardCoder-Python-34B-V1.0", 1)
    g = Git(tmp_path / "repo")
    g.commit({"deploy.py": corpus(SDK)}, "base")
    g.commit({"deploy.py": corpus(SDK).replace('"ml.g5.2xlarge"', '"ml.p4d.24xlarge"').replace(
        "# deploy model", "# deploy the model")}, "bigger endpoint")
    _, doc = _gate(g, capsys)
    [c] = [c for c in doc["changes"] if c["kind"] == "instance"]
    assert c["delta_monthly_usd"] == round(monthly("ml.p4d.24xlarge", 1) - monthly("ml.g5.2xlarge", 1), 2)


def test_litellm_proxy_config_models_and_a_raised_max_tokens(tmp_path, capsys):
    got = found(LITELLM)
    assert got["model_list[gpt-3.5-turbo-large].litellm_params.model"] == ("model", "gpt-3.5-turbo-1106", 1)
    assert got["model_list[gpt-3.5-turbo].litellm_params.model"] == ("model", "azure/chatgpt-v-2", 1)
    assert not [k for k, v in got.items() if v[0] in ("limit", "prompt")]  # the file sets no limit

    def with_limit(n: int) -> str:
        return corpus(LITELLM).replace("      rpm: 480\n", f"      rpm: 480\n      # costwarden.feature: chat\n"
                                                          f"      max_tokens: {n}\n")

    [lim] = [s for s in extract(LITELLM, with_limit(512))[0] if s.kind == "limit"]
    assert (lim.key, lim.value, lim.model) == ("model_list[gpt-3.5-turbo-large].litellm_params.max_tokens", "512",
                                               "gpt-3.5-turbo-1106")
    g = Git(tmp_path / "repo")
    g.commit({"proxy_server_config.yaml": with_limit(512)}, "base")
    g.commit({"proxy_server_config.yaml": with_limit(2048)}, "raise the limit")
    usage = usage_file(tmp_path / "u.jsonl", "chat", "gpt-3.5-turbo-1106", out_per_reply=500)
    main(["gate", "--repo", str(g.path), "--base", "HEAD~1", "--format", "json", "--usage", str(usage)])
    [c] = json.loads(capsys.readouterr().out)["changes"]
    price = PriceMap().price("gpt-3.5-turbo-1106")
    assert price is not None and c["feature"] == "chat"
    expected = RECORDS * PER_MONTH * (2048 - 512) * price.output_usd  # mean 500 is at the old limit: the ceiling
    assert c["basis"].startswith("ceiling:") and c["delta_monthly_usd"] == round(float(expected), 2)


def test_aws_docs_boto3_example_with_placeholders_has_no_instance_until_filled_in(tmp_path, capsys):
    assert found(BOTO3) == {}  # InstanceType='INSTANCE_TYPE' is a placeholder, not a type
    filled = corpus(BOTO3).replace("'INSTANCE_TYPE'", "'g5.xlarge'").replace("'NO_OF_INSTANCE'", "'2'")
    assert found(BOTO3, filled) == {"create_instances.InstanceType#1": ("instance", "g5.xlarge", 2)}
    g = Git(tmp_path / "repo")
    g.commit({"launch.py": filled}, "base")
    g.commit({"launch.py": filled.replace("'g5.xlarge'", "'p4d.24xlarge'")}, "bigger")
    _, doc = _gate(g, capsys)
    [c] = doc["changes"]
    assert c["delta_monthly_usd"] == round(monthly("p4d.24xlarge", 2) - monthly("g5.xlarge", 2), 2)


def test_vllm_helm_values_gpus_times_replica_count(tmp_path, capsys):
    assert found(HELM) == {"resources": ("gpu", "", 1)}
    g = Git(tmp_path / "repo")
    g.commit({"charts/vllm/values.yaml": corpus(HELM)}, "base")
    g.commit({"charts/vllm/values.yaml": corpus(HELM).replace("replicaCount: 1", "replicaCount: 3")}, "scale")
    code = main(["gate", "--repo", str(g.path), "--base", "HEAD~1", "--format", "json", "--gpu-hourly-usd", "1.5"])
    [c] = json.loads(capsys.readouterr().out)["changes"]
    assert (c["old_count"], c["new_count"]) == (1, 3)
    assert c["delta_monthly_usd"] == round(1.5 * 730 * (3 - 1), 2) and code == 1
