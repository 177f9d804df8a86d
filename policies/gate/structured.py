"""Settings in YAML, JSON and TOML: model ids anywhere in the document, and Kubernetes GPU requests.

- A model id is keyed by its path in the document (`llm.summarize.model`); list items are keyed
  by their `name` (or `model_name`) when they have one, since their order can change.
- YAML that does not parse (a Helm template, say) is still scanned line by line for model keys.
- Kubernetes workloads: GPUs per pod (`nvidia.com/gpu` limits/requests) x replicas; the node's
  instance type comes from the `node.kubernetes.io/instance-type` node selector when present.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import yaml

from costwarden.policies.gate.setting import Setting, is_model_key, looks_like_model, to_int

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
GPU_RESOURCE = "nvidia.com/gpu"
_NODE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


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
        if fmt == "yaml":
            docs = [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if d is not None]
        elif fmt == "json":
            docs = [json.loads(text)] if text.strip() else []
        else:
            docs = [tomllib.loads(text)]
    except (yaml.YAMLError, ValueError) as exc:
        if fmt != "yaml":
            warnings.append(f"{path}: not valid {fmt.upper()} ({str(exc).splitlines()[0]}); skipped")
            return []
        warnings.append(f"{path}: not valid YAML (a template?); model keys found by a line scan")
        return list(_yaml_lines(text))
    lines = _Lines(text)
    out: list[Setting] = []
    for n, doc in enumerate(docs):
        prefix = f"[{n}]" if len(docs) > 1 else ""
        if isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc:
            name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc.get("metadata"), dict) else "?"
            prefix = f"{doc['kind']}/{name}"
            gpu = _k8s_gpu(doc, prefix, lines)
            if gpu:
                out.append(gpu)
        out.extend(_walk(doc, prefix, lines))
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


_YAML_LINE_RE = re.compile(r"^\s*(?:-\s+)?[\"']?([\w.-]+)[\"']?\s*:\s*[\"']?([^\"'#\s{}]+)[\"']?\s*(?:#.*)?$")


def _yaml_lines(text: str) -> Iterator[Setting]:
    seen: dict[str, int] = {}
    for i, line in enumerate(text.splitlines(), 1):
        m = _YAML_LINE_RE.match(line)
        if m and is_model_key(m.group(1)) and looks_like_model(m.group(2)):
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
            yield Setting("model", f"{m.group(1)}#{seen[m.group(1)]}", m.group(2), line=i)


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _k8s_gpu(doc: dict[str, Any], key: str, lines: _Lines) -> Setting | None:
    """GPUs a workload holds: GPUs per pod x replicas (x parallelism for Jobs)."""
    kind, spec, notes = doc.get("kind"), doc.get("spec") or {}, []
    if kind == "Pod":
        pod, replicas = spec, 1
    elif kind == "CronJob":
        pod, replicas = _get(spec, "jobTemplate", "spec", "template", "spec"), _get(spec, "jobTemplate", "spec",
                                                                                   "parallelism")
    elif kind == "Job":
        pod, replicas = _get(spec, "template", "spec"), _get(spec, "parallelism")
    else:
        pod, replicas = _get(spec, "template", "spec"), _get(spec, "replicas")
        if kind == "DaemonSet":
            notes.append("DaemonSet: one pod per node; node count unknown, counted once")
    if not isinstance(pod, dict):
        return None
    per_pod = 0
    for c in pod.get("containers") or []:
        res = (c or {}).get("resources") or {}
        per_pod += max(to_int(_get(res, "limits", GPU_RESOURCE)) or 0, to_int(_get(res, "requests", GPU_RESOURCE)) or 0)
    if per_pod == 0:
        return None
    n = to_int(replicas) if replicas is not None else 1
    if n is None:
        notes.append(f"replicas {replicas!r} is not a number; counted as 1")
        n = 1
    selector = pod.get("nodeSelector") or {}
    node_type = next((str(selector[k]) for k in _NODE_TYPE_LABELS if k in selector), "")
    return Setting("gpu", key, node_type, count=per_pod * n, line=lines.find(GPU_RESOURCE),
                   provider="aws" if node_type else "", notes=tuple(notes))

