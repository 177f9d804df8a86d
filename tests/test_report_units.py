"""Units in the reports: per-unit money with its currency and the places it needs; unpriced usage
shown as unpriced with its request count, never as $0.00."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from costwarden.agent.reports.output import render_markdown
from costwarden.agent.reports.render import cost_cell, render_html, unit_usd
from costwarden.agent.reports.sections import build_sections
from tests.sample_results import sweep_result

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


@pytest.mark.parametrize(("value", "text"), [(0.049237, "$0.0492"), (0.000123456, "$0.000123"), (1.254, "$1.25"),
                                             (12345.678, "$12,345.68"), (0, "$0.00"), (None, "-"),
                                             (-0.05, "-$0.0500")])
def test_unit_amounts_keep_their_currency_and_enough_places(value, text):
    assert unit_usd(value) == text


def test_cost_cell_tells_unpriced_from_zero():
    assert cost_cell({"cost_usd": 0.0, "requests": 1200, "unpriced_requests": 1200}, "cost_usd") == \
        "unpriced (1,200 requests)"
    assert cost_cell({"cost_usd": 12.5, "requests": 10, "unpriced_requests": 3}, "cost_usd") == \
        "$12.50 + 3 unpriced requests"
    assert cost_cell({"cost_usd": 0.0, "requests": 10, "unpriced_requests": 0}, "cost_usd") == "$0.00"


def sections_with_economics() -> dict:
    s = build_sections(sweep_result(), now=NOW)
    s["economics"] = {
        "window_days": 7,
        "overall": {"key": "all", "requests": 3000, "successes": 2000, "tokens": 10, "cost_usd": 98.47,
                    "unpriced_requests": 1200, "per_1m_tokens_usd": 2.5, "per_1k_requests_usd": 54.7,
                    "per_success_usd": 0.049237},
        "by_feature": [
            {"key": "helpdesk", "requests": 1800, "successes": 2000, "tokens": 10, "cost_usd": 98.47,
             "unpriced_requests": 0, "per_1m_tokens_usd": 2.5, "per_1k_requests_usd": 54.7,
             "per_success_usd": 0.049237},
            {"key": "triage", "requests": 1200, "successes": 1100, "tokens": 10, "cost_usd": 0.0,
             "unpriced_requests": 1200, "per_1m_tokens_usd": None, "per_1k_requests_usd": None,
             "per_success_usd": None}],
        "by_tier": [], "tier_margins": [], "overruns": [], "reconciliation": [], "spend_by_team": []}
    return s


def test_html_unit_economics_has_currency_and_never_prices_triage_at_zero():
    html = render_html(sweep_result(), sections_with_economics())
    assert "$0.0492 per successful interaction" in html and "1,200 requests unpriced" in html
    table = html[html.index('id="table-unit-costs"'):]
    table = table[:table.index("</table>")]
    triage = table[table.index("triage"):]
    triage = triage[:triage.index("</tr>")]
    assert "unpriced (1,200 requests)" in triage and "$0.00" not in triage and "0.049237" not in html
    helpdesk = table[table.index("helpdesk"):]
    assert "$0.0492" in helpdesk[:helpdesk.index("</tr>")]


def test_markdown_unit_economics_matches():
    md = render_markdown(sweep_result(), sections_with_economics())
    triage = next(line for line in md.splitlines() if line.startswith("| triage"))
    assert "unpriced (1,200 requests)" in triage and "$0.00" not in triage
    helpdesk = next(line for line in md.splitlines() if line.startswith("| helpdesk | 1,800"))
    assert "$0.0492" in helpdesk and "0.049237" not in md
    assert "$0.0492 per successful interaction" in md
