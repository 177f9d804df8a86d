"""Nothing hidden: every top-N list (the HTML report's bar charts, the Slack digest) ends with an
"other (N)" entry carrying the rest, so what is shown adds up to the total it stands for."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costwarden.agent.reports.charts import TOP_BARS, chart_bars, chart_savings
from costwarden.agent.reports.digest import SECTION_CHARS, digest_blocks
from costwarden.agent.reports.rest import top_with_rest

amounts = st.lists(st.floats(min_value=0.01, max_value=1e6, allow_nan=False).map(lambda v: round(v, 2)),
                   max_size=40)


@settings(max_examples=200, deadline=None)
@given(values=amounts, limit=st.integers(1, 15))
def test_top_with_rest_keeps_the_total_and_the_limit(values, limit):
    rows = [{"k": f"r{i}", "v": v, "maybe": None if i % 2 else v} for i, v in enumerate(sorted(values, reverse=True))]
    out = top_with_rest(rows, limit, "k", ["v", "maybe"])
    assert len(out) == min(len(rows), limit)
    assert sum(r["v"] for r in out) == pytest.approx(sum(values))
    known = [r["maybe"] for r in rows if r["maybe"] is not None]
    assert sum(r["maybe"] or 0 for r in out) == pytest.approx(sum(known))
    others = [r for r in out if str(r["k"]).startswith("other")]
    if len(rows) > limit:
        assert out[:-1] == rows[:limit - 1] and others == [out[-1]]
        assert out[-1]["k"] == f"other ({len(rows) - limit + 1})"
    else:
        assert out == rows and not others


def test_unknown_amounts_stay_unknown_in_the_other_row():
    rows = [{"k": "a", "v": None}, {"k": "b", "v": None}, {"k": "c", "v": None}]
    assert top_with_rest(rows, 2, "k", ["v"])[-1] == {"k": "other (2)", "other": 2, "v": None}


def _digest(values: list[float], summary: str) -> dict:
    findings = [{"resource": f"i-{i:04d}", "detector": "idle-gpu", "monthly_waste_usd": v, "summary": summary,
                 "team": "ml"} for i, v in enumerate(values)]
    return {"since": datetime(2026, 11, 30, tzinfo=timezone.utc), "until": datetime(2026, 12, 7, tzinfo=timezone.utc),
            "findings": findings, "projected_monthly_savings_usd": 0.0, "actions_by_decision": {},
            "realized_monthly_usd": None}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=amounts.filter(bool), top_n=st.integers(1, 8), summary_len=st.integers(0, 2000),
       team=st.sampled_from([None, "ml"]))
def test_the_digest_lines_add_up_to_the_waste_it_states(values, top_n, summary_len, team):
    text, blocks = digest_blocks(_digest(values, "x" * summary_len), team=team, top_n=top_n)
    stated = float(re.search(r"\$([\d,]+\.\d\d)/month of waste", text).group(1).replace(",", ""))
    assert stated == pytest.approx(sum(values), abs=0.006)
    section = blocks[-1]["text"]["text"]
    assert len(section) <= SECTION_CHARS
    lines = section.splitlines()[1:]
    listed = [float(m.replace(",", "")) for m in re.findall(r": \$([\d,]+\.\d\d)/month", section)]
    assert len(listed) == len(lines) == min(len(values), top_n + 1)  # every line kept its amount
    assert sum(listed) == pytest.approx(stated, abs=0.006 * len(lines))
    if len(values) > top_n + 1:
        assert lines[-1].startswith(f"{top_n + 1}. other ({len(values) - top_n}) findings: $")


def test_the_bar_charts_end_with_an_other_bar():
    rows = [{"team": f"team-{i:02d}", "findings": 1, "monthly_waste_usd": 1000.0 - i} for i in range(20)]
    svg = chart_bars(rows, "team", "By team", "t")
    rest = 20 - (TOP_BARS - 1)
    assert f"other ({rest})" in svg and "team-10" in svg and "team-11" not in svg
    labels = [float(v.replace(",", "")) for v in re.findall(r"\$([\d,]+)<", svg)]
    assert sum(labels) == pytest.approx(sum(r["monthly_waste_usd"] for r in rows), abs=len(labels))
    few = chart_bars(rows[:3], "team", "By team", "t")
    assert "other (" not in few

    savings = [{"resource": f"ec2:i-{i:04d}", "projected_monthly_usd": 100.0, "realized_monthly_usd": 90.0 if i % 2 else None}
               for i in range(30)]
    assert f"other ({30 - (TOP_BARS - 1)})" in chart_savings(savings)
