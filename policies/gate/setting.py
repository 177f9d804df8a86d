"""One cost-relevant setting found in a file, and the tests every extractor applies to a model id.

- A model id is a string value whose *key* names a model (`model`, `default_model`, `modelName`,
  `OPENAI_MODEL`, `fallback_models`, ...) and whose *value* looks like a model (a known family
  such as gpt/claude/gemini/llama, a provider prefix, or a digit). The value test keeps
  `model="User"` (an ORM model) out of a cost report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["model", "instance", "gpu", "limit", "prompt"]

_KEY_RE = re.compile(r"model(?:s|_?names?|_?ids?)?$", re.IGNORECASE)
_FAMILY_RE = re.compile(
    r"^(?:[\w.-]+/)*(?:gpt|o[1-9]|chatgpt|text-|claude|anthropic\.|gemini|gemma|llama|meta-llama|meta\.|mistral|"
    r"mixtral|codestral|ministral|command|cohere|amazon\.|titan|nova|deepseek|qwen|phi-|grok|jamba|sonar|"
    r"davinci|babbage|whisper|tts-|dall-e|embed)", re.IGNORECASE)
_VALUE_RE = re.compile(r"[A-Za-z0-9][\w.:/@+-]*")


@dataclass(frozen=True)
class Setting:
    """One cost-relevant value at one place in a file.

    `key` locates it independently of line numbers (which shift with every edit), so the
    base and head versions of the same setting can be paired: "llm.summarize.model",
    "aws_instance.train", "Deployment/infer". `value` is the model id or instance type ("" for
    a GPU request on an unknown node type; the token count of a `limit`, the characters of a
    system `prompt`); `count` is instances or GPUs (1 otherwise). `model` is the model id next to
    a limit or prompt (same call or mapping), to price it with; "" when none is written there.
    """

    kind: Kind
    key: str
    value: str
    count: int = 1
    line: int = 0
    provider: str = ""
    feature: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)
    model: str = field(default="", compare=False)


def is_model_key(key: str) -> bool:
    return bool(_KEY_RE.search(key.strip().strip("\"'`")))


def looks_like_model(value: str) -> bool:
    """A model id: one token, at least two letters, and a known family, a provider prefix or a digit."""
    v = value.strip()
    if not v or len(v) > 120 or not _VALUE_RE.fullmatch(v):
        return False
    if _FAMILY_RE.match(v):
        return True
    return sum(c.isalpha() for c in v) >= 2 and ("/" in v or any(c.isdigit() for c in v))


def dig(d: Any, *keys: str) -> Any:
    """`d[k1][k2]...`, or None where a level is missing or not a mapping (parsed YAML is untyped)."""
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def to_int(value: Any) -> int | None:
    """A count written as a literal (`3`, `"3"`), else None: a count built at run time is not known here."""
    try:
        return int(str(value).strip())
    except ValueError:
        return None



# -- instance and machine types ------------------------------------------------------------------------
_AWS_TYPE_RE = re.compile(r"(?:[a-z]+\.)?[a-z][a-z0-9-]*\.(?:nano|micro|small|medium|large|\d*xlarge|metal(?:-\d+xl)?)")
_GCP_TYPE_RE = re.compile(r"[a-z][a-z0-9]*-(?:standard|highmem|highcpu|highgpu|megagpu|ultragpu|ultramem|megamem|"
                          r"hypermem|micro|small|medium|custom)(?:-[0-9a-z-]+)?")
_COUNT_KEYS = frozenset({"replicas", "replicacount", "instancecount", "initialinstancecount", "desiredcapacity",
                         "desiredsize", "nodecount", "numnodes", "numinstances", "count", "minreplicas"})


def is_instance_key(key: str) -> bool:
    """`instance_type`, `instanceType`, `InstanceType`, `TRAIN_INSTANCE_TYPE`, `machine_type`,
    `node.kubernetes.io/instance-type`: the key names an instance or machine type."""
    k = re.sub(r"[-_\s]", "", key.strip().strip("\"'`")).lower()
    return k.endswith(("instancetype", "machinetype"))


def is_count_key(key: str) -> bool:
    """`replicas`, `replicaCount`, `instance_count`, `InitialInstanceCount`, `desired_capacity`, ..."""
    return re.sub(r"[-_\s]", "", key).lower() in _COUNT_KEYS


def instance_provider(value: str) -> str | None:
    """"aws" for an EC2/SageMaker-style type (`p4d.24xlarge`, `ml.g5.xlarge`), "gcp" for a GCE
    machine type (`n1-standard-4`, `a2-highgpu-1g`, also as a `.../machineTypes/NAME` URL), None
    for anything else (a variable reference, an ARN, free text)."""
    v = machine_type_name(value.strip())
    if _AWS_TYPE_RE.fullmatch(v):
        return "aws"
    if _GCP_TYPE_RE.fullmatch(v):
        return "gcp"
    return None


def machine_type_name(value: str) -> str:
    """`zones/us-central1-a/machineTypes/n1-standard-4` -> `n1-standard-4` (GCE APIs take the URL form)."""
    return value.rsplit("machineTypes/", 1)[-1] if "machineTypes/" in value else value


def instance(key: str, value: str, count: int | None, line: int, notes: tuple[str, ...] = (),
             count_from: str = "") -> Setting | None:
    """An instance setting, or None when `value` is not an instance type. A missing count is
    counted as 1 and said so; `count_from` names where a given count came from."""
    provider = instance_provider(value) if isinstance(value, str) else None
    if provider is None:
        return None
    if count is None:
        notes = (*notes, "no instance count given; 1 assumed")
    elif count_from:
        notes = (*notes, f"count {count} from {count_from}")
    return Setting("instance", key, machine_type_name(value.strip()), 1 if count is None else count, line, provider,
                   notes=notes)
