"""Words for the parameters a finding was judged with, so its text says what was actually used.

Why here: detectors write their own summaries and the explain step writes the rest; both must
render `percentile: 100` as "maximum" and a one-day lookback as "1 day", never a fixed
"(95th percentile)" or "over 1 days".
"""

from __future__ import annotations

import re
from typing import Any


def ordinal(n: float) -> str:
    """1 -> 1st, 2 -> 2nd, 11 -> 11th, 22 -> 22nd, 92.5 -> 92.5th."""
    if n != int(n):
        return f"{n:g}th"
    i = int(n)
    suffix = "th" if 10 <= i % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(i % 10, "th")
    return f"{i}{suffix}"


def percentile_name(p: float) -> str:
    """p50 -> "median", p100 -> "maximum", anything else -> "95th percentile"."""
    if p == 50:
        return "median"
    if p == 100:
        return "maximum"
    return f"{ordinal(p)} percentile"


def plural(n: float, unit: str) -> str:
    """`1 day`, `7 days`, `0 days`, `1.5 days`."""
    return f"{n:g} {unit}" if n == 1 else f"{n:g} {unit}s"


def days(n: float) -> str:
    return plural(n, "day")


_PCT_KEY = re.compile(r"_p(\d+(?:\.\d+)?)_pct$")


def evidence_percentile(ev: dict[str, Any], prefix: str) -> tuple[float | None, Any]:
    """The percentile used and its value from evidence keys like `gpu_util_p95_pct` (prefix `gpu_util`).

    Reads the explicit `percentile` key when present; the key's own number otherwise (findings
    stored before that key existed).
    """
    for k, v in ev.items():
        m = _PCT_KEY.search(k)
        if k.startswith(prefix + "_p") and m:
            p = ev.get("percentile")
            return float(p if p is not None else m.group(1)), v
    return None, None
