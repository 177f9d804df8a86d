"""Settings in YAML, JSON and TOML: model ids anywhere in the document, instance types
(CloudFormation templates in cfn.py, everything else in instances.py) and Kubernetes GPU requests.

- A model id is keyed by its path in the document (`llm.summarize.model`); list items are keyed
  by their `name` (or `model_name`) when they have one, since their order can change.
- YAML that does not parse (a Helm template, say) is still scanned line by line for model and
  instance-type keys (a count is not known there: 1 is assumed and said).
- YAML is loaded with cfn.LOADER, which reads CloudFormation's `!Ref`-style tags as opaque values
  (any other YAML file is unaffected by it).
- Kubernetes workloads: GPUs per pod (`nvidia.com/gpu` limits/requests) x replicas; the node's
  instance type comes from the instance-type node selector or required node affinity when present.
  A workload that requests GPUs is priced by its GPUs, not again by the node type it pins.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import yaml

from costwarden.policies.gate.cfn import LOADER, is_template, template_settings
from costwarden.policies.gate.limits import doc_limit_settings
from costwarden.policies.gate.instances import GPU_RESOURCE, gpus_per_pod, instance_settings, pod_node_type
from costwarden.policies.gate.setting import (Setting, dig, instance, is_instance_key, is_model_key, looks_like_model,
                                              to_int)


class _Lines:
    """Line of a value in the text, searched forward from the previous hit (structured parsers
    drop line numbers; this is for display and for annotation scope)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.pos = 0

    def find(self, *needles: str) -> int:
        for start in (self.pos, 0):
            for i in range(start, len(self.lines)):
                if all(n in self.lines[i] for n in needles):
                    self.pos = i
                    return i + 1
        return 0


def structured_settings(fmt: str, path: str, text: str, warnings: list[str]) -> list[Setting]:
    """The settings of a YAML (all documents), JSON or TOML text; a parse failure is a warning."""
    try:
        if fmt == "yaml" and path.endswith(".template") and text.lstrip().startswith("{"):
            docs = [json.loads(text)]  # a JSON CloudFormation template (tabs are not YAML)
        elif fmt == "yaml":
            docs = [d for d in yaml.load_all(text, Loader=LOADER) if d is not None]
        elif fmt == "json":
            docs = [json.loads(text)] if text.strip() else []
        else:
            docs = [tomllib.loads(text)]
    except (yaml.YAMLError, ValueError) as exc:
        if fmt != "yaml":
            warnings.append(f"{path}: not valid {fmt.upper()} ({str(exc).splitlines()[0]}); skipped")
            return []
        warnings.append(f"{path}: not valid YAML (a template?); model and instance-type keys found by a line scan")
        return list(_yaml_lines(text))
    lines = _Lines(text)
    out: list[Setting] = []
    for n, doc in enumerate(docs):
        prefix = f"[{n}]" if len(docs) > 1 else ""
        if is_template(doc):
            out.extend(template_settings(doc, lines.find))
        elif isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc:
            name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
            prefix = f"{doc['kind']}/{name}"
            gpu = _k8s_gpu(doc, prefix, lines)
            if gpu:
                out.append(gpu)
            else:  # a GPU request already prices the node type it pins
                out.extend(instance_settings(doc, prefix, lines.find, kubernetes=True))
        else:
            out.extend(instance_settings(doc, prefix, lines.find))
        out.extend(_walk(doc, prefix, lines))
        out.extend(doc_limit_settings(doc, prefix, lines.find))
    return out


def _walk(node: Any, path: str, lines: _Lines) -> Iterator[Setting]:
    if isinstance(node, dict):
        name, value = node.get("name"), node.get("value")
        if isinstance(name, str) and isinstance(value, str) and is_model_key(name) and looks_like_model(value):
            yield Setting("model", path if path.endswith(f"[{name}]") else f"{path}[{name}]", value,
                          line=lines.find(value))
        for k, v in node.items():
            key = str(k)
            sub = f"{path}.{key}" if path else key
            if isinstance(v, str) and is_model_key(key) and looks_like_model(v):
                yield Setting("model", sub, v, line=lines.find(key, v))
            elif isinstance(v, list) and is_model_key(key):
                for i, item in enumerate(v):
                    if isinstance(item, str) and looks_like_model(item):
                        yield Setting("model", f"{sub}[{i}]", item, line=lines.find(item))
                    else:
                        yield from _walk(item, f"{sub}[{i}]", lines)
            else:
                yield from _walk(v, sub, lines)
    elif isinstance(node, list):
        for i, item in enumerate(node):  # list items keyed by their name when they have one: order can change
            label = next((item[k] for k in ("name", "model_name") if isinstance(item, dict)
                          and isinstance(item.get(k), str)), i)
            yield from _walk(item, f"{path}[{label}]", lines)


_YAML_LINE_RE = re.compile(r"^\s*(?:-\s+)?[\"']?([\w./-]+)[\"']?\s*:\s*[\"']?([^\"'#\s{}]+)[\"']?\s*(?:#.*)?$")


def _yaml_lines(text: str) -> Iterator[Setting]:
    seen: dict[str, int] = {}
    for i, line in enumerate(text.splitlines(), 1):
        m = _YAML_LINE_RE.match(line)
        if not m:
            continue
        key = m.group(1)
        if is_model_key(key) and looks_like_model(m.group(2)):
            seen[key] = seen.get(key, 0) + 1
            yield Setting("model", f"{key}#{seen[key]}", m.group(2), line=i)
        elif is_instance_key(key):  # a Helm template's `node.kubernetes.io/instance-type: p4d.24xlarge`
            s = instance(f"{key}#{seen.get(key, 0) + 1}", m.group(2), None, i)
            if s is not None:
                seen[key] = seen.get(key, 0) + 1
                yield s


def _k8s_gpu(doc: dict[str, Any], key: str, lines: _Lines) -> Setting | None:
    """GPUs a workload holds: GPUs per pod x replicas (x parallelism for Jobs)."""
    kind, spec, notes = doc.get("kind"), doc.get("spec") or {}, []
    if kind == "Pod":
        pod, replicas = spec, 1
    elif kind == "CronJob":
        pod, replicas = dig(spec, "jobTemplate", "spec", "template", "spec"), dig(spec, "jobTemplate", "spec",
                                                                                   "parallelism")
    elif kind == "Job":
        pod, replicas = dig(spec, "template", "spec"), dig(spec, "parallelism")
    else:
        pod, replicas = dig(spec, "template", "spec"), dig(spec, "replicas")
        if kind == "DaemonSet":
            notes.append("DaemonSet: one pod per node; node count unknown, counted once")
    if not isinstance(pod, dict):
        return None
    per_pod = gpus_per_pod(pod)
    if per_pod == 0:
        return None
    n = to_int(replicas) if replicas is not None else 1
    if replicas is None and kind not in ("Pod", "DaemonSet"):
        notes.append("replicas not set: the Kubernetes default 1 assumed")
    if n is None:
        notes.append(f"replicas {replicas!r} is not a number; counted as 1")
        n = 1
    node_type = pod_node_type(pod)
    return Setting("gpu", key, node_type, count=per_pod * n, line=lines.find(GPU_RESOURCE),
                   provider="aws" if node_type else "", notes=tuple(notes))

