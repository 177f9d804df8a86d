"""The gate reads every place a cost is configured (issue 22): CloudFormation/SAM/CDK templates,
Kubernetes manifests, Helm values, Karpenter NodePools, plain settings and Python calls.

The corpus is tests/data/gate/ (small files written for these tests, with the layout of real ones).
Prices are computed here from the shipped tables, never hard-coded.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.agent.cli.main import main
from costwarden.policies.gate import diff_settings, extract
from costwarden.tools.pricing import price_table
from tests.test_gate import Git

DATA = Path(__file__).resolve().parent / "data" / "gate"


def corpus(rel: str) -> str:
    return (DATA / rel).read_text()


def found(rel: str, text: str | None = None) -> dict[str, tuple[str, str, int]]:
    settings, warnings = extract(rel, corpus(rel) if text is None else text)
    assert warnings == []
    return {s.key: (s.kind, s.value, s.count) for s in settings}


def hourly(kind: str, provider: str = "aws") -> Decimal:
    return Decimal(str(price_table(provider, kind)["regions"]["us-east-1"][kind]))


def monthly(kind: str, n: int) -> float:
    return round(float(hourly(kind) * 730 * n), 2)


# -- what is read in each format ---------------------------------------------------------------------
def test_cloudformation_yaml_with_short_form_intrinsics():
    assert found("cloudformation/inference.yaml") == {
        "Resources.GpuWorker": ("instance", "g5.xlarge", 1),
        "Resources.BatchBox": ("instance", "c5.large", 1),  # !Ref to a parameter: its Default
        "Resources.LlmEndpointConfig.ProductionVariants[primary]": ("instance", "ml.g5.xlarge", 2),
        "Resources.WebTemplate": ("instance", "m5.xlarge", 3),  # x the group's DesiredCapacity
    }  # DynamicBox (!If) is decided at deploy time: left out, like a Terraform variable


def test_cdk_synthesised_json_template():
    assert found("cdk.out/InferenceStack.template.json") == {
        "Resources.TrainerInstance3E1A2C41": ("instance", "g5.xlarge", 1),
        "Resources.EndpointConfig7F9E8D6C.ProductionVariants[AllTraffic]": ("instance", "ml.g5.xlarge", 1),
    }


def test_dot_template_files_are_read_as_yaml_or_json():
    assert found("stacks/web.template", corpus("cdk.out/InferenceStack.template.json"))[
        "Resources.TrainerInstance3E1A2C41"] == ("instance", "g5.xlarge", 1)
    tabbed = corpus("cdk.out/InferenceStack.template.json").replace("  ", "\t")
    assert found("stacks/web.template", tabbed)["Resources.TrainerInstance3E1A2C41"] == ("instance", "g5.xlarge", 1)
    assert found("stacks/web.template", corpus("cloudformation/inference.yaml"))["Resources.GpuWorker"] == (
        "instance", "g5.xlarge", 1)


def test_launch_configuration_counts_min_size_and_says_when_no_group_is_found():
    tpl = '''Resources:
  Lc: {Type: AWS::AutoScaling::LaunchConfiguration, Properties: {InstanceType: c5.xlarge, ImageId: !Ref Ami}}
  Asg: {Type: AWS::AutoScaling::AutoScalingGroup, Properties: {LaunchConfigurationName: !Ref Lc, MinSize: 5, MaxSize: 9}}
  Lone: {Type: AWS::EC2::LaunchTemplate, Properties: {LaunchTemplateData: {InstanceType: r5.large}}}
'''
    settings, _ = extract("stack.yml", tpl)
    by_key = {s.key: s for s in settings}
    assert (by_key["Resources.Lc"].value, by_key["Resources.Lc"].count) == ("c5.xlarge", 5)
    assert "`MinSize`" in by_key["Resources.Lc"].notes[-1]
    assert by_key["Resources.Lone"].count == 1
    assert "no instance count given; 1 assumed" in by_key["Resources.Lone"].notes


def test_helm_values_node_selectors_affinity_and_gpus():
    assert found("helm/values.yaml") == {
        "inference.nodeSelector.node.kubernetes.io/instance-type": ("instance", "g5.xlarge", 2),
        "embedder.resources": ("gpu", "g5.12xlarge", 6),  # 2 GPUs x 3 replicas, node type from the beta label
        "batch.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
        ".matchExpressions[node.kubernetes.io/instance-type]": ("instance", "c5.2xlarge", 1),
    }


def test_kubernetes_manifests_and_karpenter_nodepool():
    got = found("k8s/gpu-pool.yaml")
    assert got["NodePool/gpu.spec.template.spec.requirements[node.kubernetes.io/instance-type]"] == (
        "instance", "g5.xlarge", 1)
    api = [v for k, v in got.items() if k.startswith("Deployment/api.")]
    assert api == [("instance", "m5.xlarge", 4)]  # required node affinity x replicas
    assert got["Job/finetune"] == ("gpu", "g5.12xlarge", 8)  # 4 GPUs x parallelism 2; node label not counted twice
    assert len(got) == 3


def test_gpus_of_a_custom_resource_are_counted_with_its_replica_floor():
    isvc = ('apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n  name: llama\nspec:\n'
            '  predictor:\n    minReplicas: 2\n    nodeSelector:\n      node.kubernetes.io/instance-type: g5.12xlarge\n'
            '    model:\n      modelFormat: {name: huggingface}\n'
            '      resources:\n        limits: {nvidia.com/gpu: "4"}\n')
    assert found("isvc.yaml", isvc) == {"InferenceService/llama.spec.predictor.resources": ("gpu", "g5.12xlarge", 8)}


def test_plain_settings_toml_and_env():
    assert found("config/training.toml") == {
        "training.instance_type": ("instance", "ml.g5.xlarge", 2),
        "notebook.instanceType": ("instance", "ml.t3.medium", 1),
        "gce.machine_type": ("instance", "n1-standard-8", 1),
    }
    assert found("config/batch.env") == {"BATCH_INSTANCE_TYPE": ("instance", "c5.2xlarge", 1),
                                         "WORKER_MACHINE_TYPE": ("instance", "e2-standard-4", 1)}
    settings, _ = extract("config/batch.env", corpus("config/batch.env"))
    assert {s.provider for s in settings} == {"aws", "gcp"}
    assert all("no instance count given; 1 assumed" in s.notes for s in settings)


def test_python_calls_read_with_ast():
    assert found("python/launch.py") == {
        "launch_workers.run_instances.InstanceType#1": ("instance", "g5.xlarge", 2),  # MaxCount
        "create_endpoint.create_endpoint_config.ProductionVariants[primary]#1": ("instance", "ml.g5.xlarge", 2),
        "train.Estimator.instance_type#1": ("instance", "ml.g5.xlarge", 4),  # module constant resolved
        "train.deploy.instance_type#1": ("instance", "ml.g5.xlarge", 1),
        "gce_vm.machine_type#1": ("instance", "g2-standard-4", 1),  # the machineTypes/ URL's tail
    }  # the commented-out run_instances and the InstanceType in a string are not settings


def test_python_parameter_defaults_and_request_dicts():
    py = ('def deploy(model, instance_type: str = "ml.g5.xlarge", *, count=1, machine_type="n2-standard-8"):\n'
          '    pass\n\n\ndef launch(ec2):\n'
          '    params = {"ImageId": "ami-1", "InstanceType": "g5.xlarge", "MinCount": 1, "MaxCount": 3}\n'
          '    return ec2.run_instances(**params)\n')
    assert found("svc.py", py) == {
        "deploy.instance_type#1": ("instance", "ml.g5.xlarge", 1),
        "deploy.machine_type#1": ("instance", "n2-standard-8", 1),
        "launch.InstanceType#1": ("instance", "g5.xlarge", 3),
    }


def test_eks_nodegroup_types_and_desired_size():
    tpl = ('Resources:\n  Gpu:\n    Type: AWS::EKS::Nodegroup\n    Properties:\n      ClusterName: !Ref Cluster\n'
           '      InstanceTypes: [g5.xlarge, g5.2xlarge]\n      ScalingConfig: {MinSize: 1, DesiredSize: 3, MaxSize: 6}\n')
    settings, _ = extract("eks.yaml", tpl)
    assert [(s.key, s.value, s.count) for s in settings] == [("Resources.Gpu", "g5.xlarge", 3)]
    assert any("priced as the first" in n for n in settings[0].notes)


def test_python_that_does_not_parse_or_builds_types_at_run_time_has_no_instance():
    assert found("a.py", 'ec2.run_instances(InstanceType="p4d.24xlarge"\n') == {}  # syntax error: skipped
    assert found("b.py", 'ec2.run_instances(InstanceType=pick(), MaxCount=2)\nt = "x"\nt = "y"\n'
                         'ec2.run_instances(InstanceType=t)\n') == {}
    assert found("c.py", 'ec2.run_instances(InstanceType="p5.48xlarge", MaxCount=n)\n') == {
        "run_instances.InstanceType#1": ("instance", "p5.48xlarge", 1)}
    assert found("d.py", 'import os\nTYPE = os.environ.get("TRAIN_TYPE", "ml.p4d.24xlarge")\n'
                         'Estimator(instance_type=TYPE, instance_count=2)\n'
                         'm.deploy(instance_type=os.getenv("SERVE_TYPE", "ml.g5.xlarge"), initial_instance_count=1)\n'
                         'Estimator(instance_type=os.getenv("OTHER_TYPE"), instance_count=1)\n') == {
        "Estimator.instance_type#1": ("instance", "ml.p4d.24xlarge", 2),
        "deploy.instance_type#1": ("instance", "ml.g5.xlarge", 1)}  # a lookup without a default is left out
    settings, _ = extract("c.py", 'ec2.run_instances(InstanceType="p5.48xlarge", MaxCount=n)\n')
    assert "MaxCount is not a literal" in settings[0].notes


# -- one pull request, four places ---------------------------------------------------------------------
FOUR = {"infra/inference.yaml": "cloudformation/inference.yaml", "charts/llm/values.yaml": "helm/values.yaml",
        "jobs/launch.py": "python/launch.py"}


def _pr(text: str, rel: str) -> str:
    """The issue's pull request: the workload moves from g5.xlarge to p4d.24xlarge."""
    if rel.endswith("inference.yaml"):  # the EC2 instance and the SageMaker variant
        return text.replace("InstanceType: g5.xlarge", "InstanceType: p4d.24xlarge").replace(
            "ml.g5.xlarge", "ml.p4d.24xlarge")
    if rel.endswith("values.yaml"):
        return text.replace("instance-type: g5.xlarge", "instance-type: p4d.24xlarge")
    return text.replace('InstanceType="g5.xlarge"', 'InstanceType="p4d.24xlarge"')


def _gate(g: Git, capsys: pytest.CaptureFixture) -> tuple[int, dict]:
    code = main(["gate", "--repo", str(g.path), "--base", "HEAD~1", "--head", "HEAD", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_one_pr_moves_a_workload_in_four_places_and_every_one_is_priced(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({dst: corpus(src) for dst, src in FOUR.items()}, "base")
    g.commit({dst: _pr(corpus(src), dst) for dst, src in FOUR.items()}, "move to p4d")

    code, doc = _gate(g, capsys)

    got = {(c["file"], c["key"]): c for c in doc["changes"]}
    expected = {  # (file, key): (old type, new type, count)
        ("infra/inference.yaml", "Resources.GpuWorker"): ("g5.xlarge", "p4d.24xlarge", 1),
        ("infra/inference.yaml", "Resources.LlmEndpointConfig.ProductionVariants[primary]"):
            ("ml.g5.xlarge", "ml.p4d.24xlarge", 2),
        ("charts/llm/values.yaml", "inference.nodeSelector.node.kubernetes.io/instance-type"):
            ("g5.xlarge", "p4d.24xlarge", 2),
        ("jobs/launch.py", "launch_workers.run_instances.InstanceType#1"): ("g5.xlarge", "p4d.24xlarge", 2),
    }
    assert set(got) == set(expected)
    total = Decimal(0)
    for where, (old, new, n) in expected.items():
        c = got[where]
        assert (c["old"], c["new"], c["old_count"], c["new_count"], c["priced"]) == (old, new, n, n, True), where
        assert c["old_monthly_usd"] == monthly(old, n) and c["new_monthly_usd"] == monthly(new, n), where
        total += (hourly(new) - hourly(old)) * 730 * n
    assert doc["totals"]["delta_monthly_usd"] == round(float(total), 2)
    assert doc["unpriced"] == 0 and code == 1
    helm = got[("charts/llm/values.yaml", "inference.nodeSelector.node.kubernetes.io/instance-type")]
    assert any("one node per replica" in n for n in helm["notes"])
    assert any("`replicaCount`" in n for n in helm["notes"])


def test_renames_and_comments_are_not_changes(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    files = {dst: corpus(src) for dst, src in FOUR.items()}
    g.commit(files, "base")
    head = {
        "infra/inference.yaml": files["infra/inference.yaml"].replace("GpuWorker", "InferenceBox").replace(
            "      InstanceType: g5.xlarge", "      # the same box, renamed\n      InstanceType: g5.xlarge  # A10G"),
        "charts/llm/values.yaml": "# a comment on top\n" + files["charts/llm/values.yaml"].replace(
            "inference:", "server:  # renamed component"),
        "jobs/launch.py": files["jobs/launch.py"].replace("def launch_workers", "def start_workers").replace(
            "        MinCount=1,\n        MaxCount=2,\n", "        MaxCount=2,  # reordered\n        MinCount=1,\n"),
    }
    g.commit(head, "rename and comment")

    code, doc = _gate(g, capsys)

    assert doc["changes"] == [] and code == 0


def test_counts_the_change_carries_are_priced(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    files = {dst: corpus(src) for dst, src in FOUR.items()}
    g.commit(files, "base")
    g.commit({"infra/inference.yaml": files["infra/inference.yaml"].replace(
        "InitialInstanceCount: 2", "InitialInstanceCount: 5").replace('DesiredCapacity: "3"', 'DesiredCapacity: "4"'),
        "charts/llm/values.yaml": files["charts/llm/values.yaml"].replace("replicaCount: 3", "replicaCount: 4")},
        "scale out")

    code, doc = _gate(g, capsys)

    got = {c["key"]: c for c in doc["changes"]}
    sm = got["Resources.LlmEndpointConfig.ProductionVariants[primary]"]
    assert (sm["old_count"], sm["new_count"]) == (2, 5)
    assert sm["delta_monthly_usd"] == monthly("ml.g5.xlarge", 3)
    assert got["Resources.WebTemplate"]["delta_monthly_usd"] == monthly("m5.xlarge", 1)
    gpu = got["embedder.resources"]
    assert (gpu["kind"], gpu["old_count"], gpu["new_count"]) == ("gpu", 6, 8)
    assert gpu["delta_monthly_usd"] == round(float(hourly("g5.12xlarge") / 4 * 2 * 730), 2)
    assert len(got) == 3 and code == 1


def test_the_assumed_count_is_said_in_the_comment(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"cfg/train.yaml": "training:\n  instance_type: ml.g5.xlarge\n"}, "base")
    g.commit({"cfg/train.yaml": "training:\n  instance_type: ml.p4d.24xlarge\n"}, "head")
    code = main(["gate", "--repo", str(g.path), "--base", "HEAD~1"])
    md = capsys.readouterr().out
    assert code == 1 and "no instance count given; 1 assumed" in md
    assert f"${monthly('ml.p4d.24xlarge', 1):,.2f}" in md


def test_helm_template_that_does_not_parse_is_line_scanned_for_instance_types():
    tpl = ('spec:\n  template:\n    spec:\n      nodeSelector:\n'
           '        node.kubernetes.io/instance-type: p4d.24xlarge\n'
           '      containers:\n        - image: "{{ .Values.image }}"\n          {{- toYaml .Values.x | nindent 10 }}\n')
    settings, warnings = extract("charts/llm/templates/deploy.yaml", tpl)
    assert "line scan" in warnings[0]
    assert [(s.kind, s.key, s.value, s.count) for s in settings] == [
        ("instance", "node.kubernetes.io/instance-type#1", "p4d.24xlarge", 1)]
    assert "no instance count given; 1 assumed" in settings[0].notes


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_comment_lines_anywhere_never_change_what_is_found(data):
    """Invariant: a comment-only change gives no finding, whatever lines the comments land on."""
    for rel, mark in (("python/launch.py", "#"), ("helm/values.yaml", "#"), ("config/training.toml", "#"),
                      ("k8s/gpu-pool.yaml", "#")):
        lines = corpus(rel).splitlines()
        at = sorted(data.draw(st.lists(st.integers(0, len(lines)), max_size=5), label=rel), reverse=True)
        for i in at:
            indent = " " * data.draw(st.integers(0, 8))
            lines.insert(i, f"{indent}{mark} InstanceType: p5.48xlarge  instance_type='p5.48xlarge'")
        before, _ = extract(rel, corpus(rel))
        after, _ = extract(rel, "\n".join(lines) + "\n")
        assert diff_settings(rel, before, after) == [], rel


def test_comment_shows_where_a_count_came_from_under_the_row(tmp_path, capsys):
    g = Git(tmp_path / "repo")
    g.commit({"charts/llm/values.yaml": corpus("helm/values.yaml")}, "base")
    g.commit({"charts/llm/values.yaml": _pr(corpus("helm/values.yaml"), "values.yaml")}, "head")
    code = main(["gate", "--repo", str(g.path), "--base", "HEAD~1"])
    md = capsys.readouterr().out
    row = next(line for line in md.splitlines() if line.startswith("| `charts/llm/values.yaml:9`"))
    assert "2 x `g5.xlarge` -> 2 x `p4d.24xlarge`" in row and "count 2 from `replicaCount`" in row
    warnings = md.split("**Warnings**", 1)[1]
    assert "one node per replica assumed" in warnings and "count 2 from" not in warnings
    assert code == 1


# -- public examples, trimmed (sources cited in the files) -----------------------------------------------
def test_public_cloudformation_sample_prices_the_parameter_default(tmp_path, capsys):
    rel = "public/EC2InstanceWithSecurityGroupSample.yaml"
    settings, warnings = extract(rel, corpus(rel))
    assert warnings == [] and [(s.key, s.value, s.count) for s in settings] == [("Resources.EC2Instance", "t3.small", 1)]
    assert "the default of parameter `InstanceType`" in settings[0].notes
    g = Git(tmp_path / "repo")
    g.commit({"stack.yaml": corpus(rel)}, "base")
    reordered = corpus(rel).replace("      - t3.small\n      - m5.xlarge\n", "      - m5.xlarge\n      - t3.small\n")
    g.commit({"stack.yaml": reordered.replace("# Trimmed", "# A comment\n# Trimmed")}, "reorder allowed values")
    assert _gate(g, capsys)[1]["changes"] == []
    g.commit({"stack.yaml": reordered.replace("Default: t3.small", "Default: g5.xlarge")}, "bigger default")
    code, doc = _gate(g, capsys)
    [c] = doc["changes"]  # t3.small is not in the shipped table: listed, unpriced, never $0
    assert (c["old"], c["new"], c["priced"], c["old_monthly_usd"]) == ("t3.small", "g5.xlarge", False, None)
    assert any("`t3.small`" in w for w in doc["warnings"]) and code == 0
    g.commit({"stack.yaml": reordered.replace("Default: t3.small", "Default: p4d.24xlarge")}, "biggest default")
    code, doc = _gate(g, capsys)
    [c] = doc["changes"]
    assert (c["old"], c["new"]) == ("g5.xlarge", "p4d.24xlarge")
    assert c["delta_monthly_usd"] == round(monthly("p4d.24xlarge", 1) - monthly("g5.xlarge", 1), 2) and code == 1


def test_public_karpenter_nodepool_without_a_type_requirement_has_no_finding():
    assert found("public/karpenter-large-instances.yaml") == {}
