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

Kind = Literal["model", "instance", "gpu"]

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
    a GPU request on an unknown node type); `count` is instances or GPUs (1 for a model).
    """

    kind: Kind
    key: str
    value: str
    count: int = 1
    line: int = 0
    provider: str = ""
    feature: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)


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


def to_int(value: Any) -> int | None:
    """A count written as a literal (`3`, `"3"`), else None: a count built at run time is not known here."""
    try:
        return int(str(value).strip())
    except ValueError:
        return None

