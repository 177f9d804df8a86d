"""Redaction of request text before it leaves the process for classification.

Customer prompts can carry emails, credentials and account or order numbers. Classification
only needs the *shape* of a request (a one-line lookup vs a multi-step analysis), so we strip
what identifies people and secrets, and cap the length, before any model sees it.
"""

from __future__ import annotations

import re

# order matters: secrets first (they contain digits and '@'), then emails, then any number
_SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}"),  # JWT
    re.compile(r"\b(?:sk|pk|rk)-(?:[A-Za-z0-9_-]+-)*[A-Za-z0-9_-]{16,}"),  # OpenAI/Anthropic/Stripe-style
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),  # Google API keys
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}"),  # GitHub tokens
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"(?i)\b(bearer|token|api[_-]?key|secret|password|passwd|pwd)(\s*[:=]\s*|\s+)([^\s\"',;]{6,})"),
    # long mixed letter+digit runs: session ids, hashes, keys without a known prefix
    re.compile(r"\b(?=[A-Za-z0-9_\-+/]*\d)(?=[A-Za-z0-9_\-+/]*[A-Za-z])[A-Za-z0-9_\-+/]{32,}={0,2}"),
]
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

MAX_CHARS = 2000


def redact_secrets(text: str) -> str:
    """Replace credentials with <secret>; used on error messages before they reach the store."""
    out = text
    for pat in _SECRET_PATTERNS:
        if pat.groups >= 3:  # key=value form: keep the key word, drop the value
            out = pat.sub(lambda m: f"{m.group(1)}{m.group(2)}<secret>", out)
        else:
            out = pat.sub("<secret>", out)
    return out


def redact(text: str, max_chars: int = MAX_CHARS) -> str:
    """Replace secrets with <secret>, emails with <email>, every digit run with <num>; cap length."""
    out = redact_secrets(text)
    out = _EMAIL.sub("<email>", out)
    out = _NUMBER.sub("<num>", out)
    if len(out) > max_chars:
        out = out[:max_chars] + " <truncated>"
    return out
