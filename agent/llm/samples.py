"""Prompt samples per feature, for the classify step: opt-in, streamed, capped, stable.

Token-usage logs (tools/llm/usage.py) carry counts and hashes, not prompt text. Prompt text
exists only where a team turned on OpenTelemetry GenAI content capture
(`gen_ai.input.messages`) or exports samples themselves, so classification reads the files
listed in `llm.prompt_samples_paths` and nothing else. Sampling is by hash of the text: the same
files give the same sample every run, spread across the window, with duplicates counted once.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _get(rec: dict[str, Any], name: str) -> Any:
    if name in rec:
        return rec[name]
    attrs = rec.get("attributes")
    return attrs.get(name) if isinstance(attrs, dict) else None


def _feature(rec: dict[str, Any]) -> str | None:
    v = _get(rec, "costwarden.feature") or rec.get("feature")
    if v:
        return str(v)
    for tag in rec.get("request_tags") or []:
        if isinstance(tag, str) and tag.startswith("feature:"):
            return tag.removeprefix("feature:")
    return None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts or OTel parts
        return "\n".join(str(p.get("text") or p.get("content") or "") for p in content if isinstance(p, dict))
    return ""


def prompt_text(rec: dict[str, Any]) -> str | None:
    """The user-visible request of one record: user messages, else a plain prompt field."""
    msgs = _get(rec, "gen_ai.input.messages") or rec.get("messages")
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs)
        except ValueError:
            msgs = None
    if isinstance(msgs, list):
        user = [m for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
        text = "\n".join(_content_text(m.get("content", m.get("parts"))) for m in user).strip()
        if text:
            return text
    p = _get(rec, "gen_ai.prompt") or rec.get("prompt")
    return str(p) if p else None


def _files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(x for x in p.rglob("*") if x.suffix in (".jsonl", ".json", ".ndjson")) if p.is_dir() else [p])
    return out


def load_prompt_samples(paths: Iterable[str | Path], features: set[str], limit: int) -> dict[str, list[str]]:
    """Up to `limit` distinct prompts per wanted feature, chosen by hash (stable across runs)."""
    heaps: dict[str, list[tuple[int, str]]] = {f: [] for f in features}
    seen: dict[str, set[str]] = {f: set() for f in features}
    if limit <= 0 or not features:
        return {}
    for path in _files(paths):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if "prompt" not in line and "messages" not in line:
                    continue  # cheap skip: most usage lines carry no text
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(rec, dict):
                    continue
                feature = _feature(rec)
                if feature not in heaps:
                    continue
                text = prompt_text(rec)
                if not text:
                    continue
                digest = hashlib.sha256(text.encode()).hexdigest()
                if digest in seen[feature]:
                    continue
                seen[feature].add(digest)
                item = (-int(digest[:15], 16), text)  # max-heap on hash keeps the `limit` smallest
                h = heaps[feature]
                if len(h) < limit:
                    heapq.heappush(h, item)
                elif item[0] > h[0][0]:
                    heapq.heapreplace(h, item)
    return {f: [t for _, t in sorted(h, key=lambda x: -x[0])] for f, h in heaps.items() if h}
