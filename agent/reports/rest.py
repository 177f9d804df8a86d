"""Top-N lists that hide nothing: the largest rows, then one "other (N)" row carrying the rest.

Why: a chart or a Slack message with room for a dozen rows must still add up to the total it
stands for, or a reader takes the rows shown for the whole bill. The text report does the same for
spend tables (spend.top_with_other, over SpendRows); this is the form for plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def other_label(n: int) -> str:
    return f"other ({n})"


def top_with_rest(rows: Sequence[dict[str, Any]], limit: int, label: str,
                  amounts: Sequence[str]) -> list[dict[str, Any]]:
    """At most `limit` rows: all of them when they fit, else the first `limit` - 1 (the caller sorts)
    and one row labelled `other (N)` whose `amounts` are the sums of the N rows left out (None when
    every one of them is None: unknown stays unknown, never $0)."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if len(rows) <= limit:
        return list(rows)
    shown, rest = list(rows[:limit - 1]), rows[limit - 1:]
    other: dict[str, Any] = {label: other_label(len(rest)), "other": len(rest)}
    for key in amounts:
        known = [r[key] for r in rest if r.get(key) is not None]
        other[key] = sum(known) if known else None
    return shown + [other]
