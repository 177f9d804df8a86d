"""Find cost-relevant settings in the text of one file: LLM model ids, instance types and counts,
Kubernetes GPU requests.

Pure functions over (path, text): no IO, no prices. The gate calls them on the base and head
version of each changed file and diffs the results (policies.gate.diff), so the rules decide what a
pull request can change without being noticed. Each format has its reader and its reasons:
setting.py (what a model id and an instance type are), code.py (.env, Python, TypeScript model
ids), pycalls.py (instance types in boto3 / SageMaker SDK / google-cloud-compute calls, via `ast`),
structured.py (YAML, JSON, TOML; with cfn.py for CloudFormation/SAM/CDK templates and instances.py
for Kubernetes, Helm values, Karpenter and plain settings), terraform.py; limits.py (output-token
limits and system prompts, in settings and Python calls).

A `costwarden.feature: NAME` (or `=NAME`) annotation anywhere in the file (comment or data)
names the product feature of every setting below it, up to the next annotation.
"""

from __future__ import annotations

import re
from dataclasses import replace

from costwarden.policies.gate.code import env_settings, script_settings
from costwarden.policies.gate.limits import PY_LIMIT_WORDS, python_limit_settings
from costwarden.policies.gate.pycalls import python_instance_settings
from costwarden.policies.gate.setting import Setting
from costwarden.policies.gate.structured import structured_settings
from costwarden.policies.gate.terraform import terraform_settings

__all__ = ["Setting", "annotations", "extract", "file_format"]

_ANNOTATION_RE = re.compile(r"costwarden\.feature[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9][\w.-]*)")
_SCRIPT_EXT = (".py", ".pyi", ".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")
_PY_INSTANCE_WORDS = ("InstanceType", "instance_type", "machine_type")  # parse only files that can hold one


def file_format(path: str) -> str | None:
    """The extractor for a path, or None when the file cannot hold a cost-relevant setting."""
    name = path.rsplit("/", 1)[-1].lower()
    if name == ".env" or name.startswith(".env.") or name.endswith(".env"):
        return "env"
    if name.endswith((".tf", ".tfvars")):
        return "terraform"
    if name.endswith((".yaml", ".yml", ".template")):  # `*.template`: CloudFormation's old suffix, YAML or JSON
        return "yaml"
    if name.endswith(".json"):
        return "json"
    if name.endswith(".toml"):
        return "toml"
    if name.endswith(_SCRIPT_EXT):
        return "script"
    return None


def annotations(text: str) -> list[tuple[int, str]]:
    """(line, feature) of every `costwarden.feature` annotation, in file order."""
    return [(i, m.group(1)) for i, line in enumerate(text.splitlines(), 1)
            for m in [_ANNOTATION_RE.search(line)] if m]


def _feature_at(marks: list[tuple[int, str]], line: int) -> str | None:
    found = None
    for at, name in marks:
        if at > line:
            break
        found = name
    return found


def extract(path: str, text: str) -> tuple[list[Setting], list[str]]:
    """All settings of one file version, and warnings (e.g. a file that would not parse)."""
    fmt = file_format(path)
    if fmt is None:
        return [], []
    warnings: list[str] = []
    if fmt == "env":
        found = list(env_settings(text))
    elif fmt == "script":
        found = list(script_settings(text))
        if path.endswith((".py", ".pyi")) and any(w in text for w in _PY_INSTANCE_WORDS):
            found += python_instance_settings(text)
        if path.endswith((".py", ".pyi")) and any(w in text for w in PY_LIMIT_WORDS):
            found += python_limit_settings(text)
    elif fmt == "terraform":
        found = terraform_settings(text)
    else:
        found = structured_settings(fmt, path, text, warnings)
    marks = annotations(text)
    if marks:
        found = [replace(s, feature=_feature_at(marks, s.line)) for s in found]
    return found, warnings

