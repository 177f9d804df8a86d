"""Grounding check: a model-written rationale may quote only numbers found in the evidence.

A rationale ends up in Slack and in reports, where people act on its figures. A model that
invents "$12,000/month" or "3% utilisation" would be believed, so every number in its text
must match (after normalisation) a number in the finding's evidence, or the text is rejected
and the deterministic template is used instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

# a number standing on its own: not part of an identifier such as p4d.24xlarge, gpt-4o, us-east-1, H100
_TEXT_NUMBER = re.compile(r"(?<![\w.\-/])\d[\d,]*(?:\.\d+)?(?![\w])")
_ANY_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _to_decimal(raw: str) -> Decimal | None:
    try:
        return Decimal(raw.replace(",", ""))
    except InvalidOperation:
        return None


def numbers_in_text(text: str) -> list[str]:
    """The numbers a reader would take as figures (with commas and decimals), in order."""
    return [m.group(0).rstrip(".,") for m in _TEXT_NUMBER.finditer(text)]


def evidence_numbers(values: Iterable[Any]) -> set[Decimal]:
    """Every number in the evidence: numeric values, digits inside strings and keys, recursively."""
    found: set[Decimal] = set()

    def walk(v: Any) -> None:
        if isinstance(v, bool) or v is None:
            return
        if isinstance(v, (int, float, Decimal)):
            d = _to_decimal(str(v))
            if d is not None:
                found.add(d)
        elif isinstance(v, str):
            for m in _ANY_NUMBER.finditer(v.replace(",", "")):
                d = _to_decimal(m.group(0))
                if d is not None:
                    found.add(d)
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(str(k))
                walk(x)
        elif isinstance(v, (list, tuple, set)):
            for x in v:
                walk(x)

    for v in values:
        walk(v)
    return found


def _variants(d: Decimal) -> set[Decimal]:
    """The forms a faithful writer may use: rounded or cut to 0-4 places, a share as a percentage."""
    out = {d.normalize()}
    for base in (d, d * 100):
        for places in range(5):
            for mode in (ROUND_HALF_UP, ROUND_DOWN):
                out.add(base.quantize(Decimal(1).scaleb(-places), rounding=mode).normalize())
    return out


def ungrounded_numbers(text: str, evidence: Iterable[Any]) -> list[str]:
    """Numbers in `text` that match no evidence number (empty list: the text is grounded)."""
    allowed: set[Decimal] = set()
    for d in evidence_numbers(evidence):
        allowed |= _variants(d)
    bad = []
    for raw in numbers_in_text(text):
        d = _to_decimal(raw)
        if d is None or d.normalize() not in allowed:
            bad.append(raw)
    return bad
