"""Margins and costs with unpriced usage: a feature or tier whose requests have no known price is
shown as "unpriced" with its request count, never $0.00; a margin with unpriced requests is "at
most ..., incomplete". And the tables add up: over generated usage, the rendered cost-per-feature
table sums to the overall figures, and the tier margins to the overall monthly cost."""

from __future__ import annotations

import html as htmllib
import re
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costwarden.agent.cli.report import cell as text_cell
from costwarden.agent.reports.render import bound_cell, render_html
from costwarden.agent.reports.sections import build_sections
from costwarden.agent.reports.spend import margin_row
from costwarden.policies.economics import monthly, tier_margins, unit_costs, unit_costs_by
from costwarden.state.usage import UsageGroup
from tests.sample_results import sweep_result

WINDOW_DAYS = 7.0
PRICES = {"starter": 20.0, "pro": 99.0}

groups_st = st.lists(st.builds(
    UsageGroup,
    feature=st.sampled_from(["helpdesk", "triage", "agent-chat", "search"]),
    tier=st.sampled_from(["starter", "pro", "enterprise"]),
    model=st.sampled_from(["gpt-4o", "mystery-model"]),
    provider=st.just("openai"),
    outcome=st.sampled_from(["success", "failure"]),
    requests=st.integers(1, 5000), users=st.integers(1, 50),
    input_tokens=st.integers(0, 10**7), output_tokens=st.integers(0, 10**6), cache_read_tokens=st.just(0),
    cost_usd=st.one_of(st.none(), st.decimals(min_value=0, max_value=10000, places=6)),
), max_size=25)


def _rows(table: str) -> list[list[str]]:
    body = table[table.index("<tbody>"):]
    return [[htmllib.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
            for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def _table(page: str, table_id: str) -> str:
    start = page.index(f'id="{table_id}"')
    return page[start:page.index("</table>", start)]


def _money(text: str) -> Decimal:
    m = re.search(r"-?\$([\d,]+\.\d\d)", text)
    return Decimal(0) if m is None else Decimal(m.group(1).replace(",", "")) * (-1 if text.lstrip().startswith("-") else 1)


def _unpriced(text: str) -> int:
    m = re.search(r"([\d,]+) (?:unpriced )?requests", text)
    return 0 if m is None else int(m.group(1).replace(",", ""))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=groups_st)
def test_tables_with_unpriced_usage_add_up_and_never_show_zero(groups):
    overall = unit_costs(groups)
    features = unit_costs_by(groups, lambda g: g.feature)
    assert sum((u.cost_usd for u in features), Decimal(0)) == overall.cost_usd
    assert sum(u.unpriced_requests for u in features) == overall.unpriced_requests
    assert sum(u.requests for u in features) == overall.requests
    users = {g.tier: g.users for g in groups}
    margins = tier_margins(groups, users, PRICES, WINDOW_DAYS)
    assert abs(sum((m.cost_usd_month for m in margins), Decimal(0)) - monthly(overall.cost_usd, WINDOW_DAYS)) \
        < Decimal("1e-18")  # Decimal's 28 digits: per-tier monthly() rounds in the last place
    assert sum(m.unpriced_requests for m in margins) == overall.unpriced_requests
    for m in margins:
        assert m.incomplete == (m.unpriced_requests > 0)

    sections = build_sections(sweep_result())
    sections["economics"] = {"window_days": WINDOW_DAYS, "overall": overall.to_dict(),
                             "by_feature": [u.to_dict() for u in features], "by_tier": [],
                             "tier_margins": [margin_row(m) for m in margins], "overruns": [],
                             "reconciliation": [], "spend_by_team": []}
    page = render_html(sweep_result(), sections)
    if not groups:
        return
    rows = _rows(_table(page, "table-unit-costs"))  # feature, requests, tokens, cost, per 1M, per success, unpriced
    assert len(rows) == len(features)
    for row, u in zip(rows, features):
        if u.unpriced_requests == u.requests:
            assert row[3] == f"unpriced ({u.requests:,} requests)" and row[4] == row[5] == "unpriced"
        else:
            assert "unpriced" not in row[3] or row[3].endswith(f"+ {u.unpriced_requests:,} unpriced requests")
    # the rendered table adds up to the overall figures (to the cent per row)
    assert abs(sum(_money(r[3]) for r in rows if not r[3].startswith("unpriced")) - overall.cost_usd) \
        <= Decimal("0.005") * len(rows) + Decimal("1e-6")
    assert sum(_unpriced(r[3]) for r in rows) == overall.unpriced_requests

    mrows = _rows(_table(page, "table-tier-margins"))  # tier, users, revenue, LLM cost, margin, cost per user
    assert [r[0] for r in mrows] == [m.tier for m in margins]
    for row, m in zip(mrows, margins):
        assert ("unpriced" in row[3]) == (m.unpriced_requests > 0)  # a $0.00 is then priced usage, and says so
        if m.unpriced_requests and m.margin_usd_month is not None:
            assert re.fullmatch(r"at most -?\$[\d,]+\.\d\d, incomplete", row[4]), row[4]
        elif m.margin_usd_month is not None:
            assert row[4].startswith(("$", "-$")) and "incomplete" not in row[4]
        if m.unpriced_requests and m.unpriced_requests == m.requests:
            assert row[3] == f"unpriced ({m.requests:,} requests)"


def test_the_cells_in_words():
    row = {"tier": "starter", "users": 20, "revenue_usd_month": 400.0, "llm_cost_usd_month": 577.6,
           "margin_usd_month": -177.6, "cost_per_user_month": 28.88, "requests": 1000, "unpriced_requests": 3}
    assert bound_cell(row, "margin_usd_month", "at most") == "at most -$177.60, incomplete"
    assert bound_cell(row, "cost_per_user_month", "at least") == "at least $28.88, incomplete"
    assert bound_cell({**row, "unpriced_requests": 0}, "margin_usd_month", "at most") == "-$177.60"
    everything = {**row, "llm_cost_usd_month": 0.0, "margin_usd_month": 400.0, "cost_per_user_month": 0.0,
                  "unpriced_requests": 1000}
    assert bound_cell(everything, "cost_per_user_month", "at least") == "unpriced"
    # the terminal report says the same
    assert text_cell(row, "margin_usd_month") == "at most -$177.60, incomplete"
    assert text_cell(row, "llm_cost_usd_month") == "$577.60 + 3 unpriced requests"
    assert text_cell(row, "revenue_usd_month") == "$400.00"
    assert text_cell(everything, "llm_cost_usd_month") == "unpriced (1,000 requests)"
    assert text_cell(everything, "cost_per_user_month") == "unpriced"
    assert text_cell({"key": "triage", "requests": 5, "unpriced_requests": 5, "cost_usd": 0.0,
                      "per_success_usd": None}, "cost_usd") == "unpriced (5 requests)"
