"""LiteLLM cell-hours with many tenants: a sketch from the database, a distinct count, not a sum.

300 tenants of the `pro` tier active in each of 48 hours are 300 users, not 300 x 48 = 14,400
(what adding each hour's COUNT(DISTINCT) up gave). The sketch is computed in the database (PostgreSQL
and SQLite), so it must equal Python's sketch of the same names register for register.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rich.console import Console

from costwarden.agent.cli.report import render
from costwarden.agent.reports.spend import USERS_ESTIMATED, build_report
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.llm import sketch
from costwarden.tools.llm.litellm_db import TENANT_SET_MAX, LiteLLMDatabase
from costwarden.tools.llm.usage import open_usage
from tests.test_litellm_db import url, write  # noqa: F401 - `url` is the fixture (SQLite, PostgreSQL)

END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
START = END - timedelta(hours=48)
PRO = [f"customer-{i:03d}-é" for i in range(300)]
FREE = ["acme", "globex"]


def _request(n: int, hour: datetime, tenant: str, tier: str) -> dict:
    t = (hour + timedelta(minutes=n % 60)).replace(tzinfo=None)
    return {"request_id": f"r{n}", "call_type": "acompletion", "api_key": "k1", "spend": 0.001, "prompt_tokens": 100,
            "completion_tokens": 10, "startTime": t, "endTime": t, "model": "gpt-4o-mini", "model_group": "chat",
            "custom_llm_provider": "openai", "request_tags": ["feature:chat", f"tier:{tier}"], "end_user": tenant,
            "user": "", "status": "success", "cache_read": 0}


def _rows() -> list[dict]:
    out: list[dict] = []
    for h in range(48):
        hour = START + timedelta(hours=h)
        for tenant, tier in [(t, "pro") for t in PRO] + [(t, "free") for t in FREE]:
            out.append(_request(len(out), hour, tenant, tier))
    return out


def test_many_tenants_every_hour_are_counted_once(url):  # noqa: F811
    write(url, _rows(), daily=False)
    cells, _ = LiteLLMDatabase(url, source="spend_logs").read(None)
    pro = [c for c in cells if c.tier == "pro"]
    assert len(pro) == 48
    expected = tuple(sorted(sketch.pack(*kv) for kv in sketch.registers(PRO).items()))
    for c in pro:  # more than a set holds: the registers, computed in the database, as Python computes them
        assert (c.tenants, c.tenant_ids, c.tenant_sketch) == (300, None, expected)
    assert all(c.tenant_ids == tuple(FREE) and c.tenant_sketch is None for c in cells if c.tier == "free")
    assert TENANT_SET_MAX < 300

    log = open_usage(BillingSettings(litellm_database_url=url, litellm_database_source="spend_logs"))
    window = (START, END + timedelta(hours=1))
    users = log.tier_users(*window)
    assert abs(users["pro"] - 300) <= 15, users  # within 5% (it was 14,400)
    assert users["free"] == 2  # no sketch in the tier: exact
    assert log.feature_tier_users(*window)[("chat", "pro")] == users["pro"]
    assert [g.users for g in log.groups(*window) if g.tier == "pro"] == [users["pro"]]
    assert log.users_estimated(*window)
    log.close()


def test_the_spend_report_says_when_users_are_estimated(url):  # noqa: F811
    write(url, _rows(), daily=False)
    billing = BillingSettings(litellm_database_url=url, litellm_database_source="spend_logs",
                              tier_revenue_usd_month={"pro": 20.0, "free": 0.0})
    doc = build_report(billing, END + timedelta(hours=1), anomalies=False)
    margins = {m["tier"]: m["users"] for m in doc["usage"]["tier_margins"]}
    assert doc["usage"]["users_estimated"] and abs(margins["pro"] - 300) <= 15 and margins["free"] == 2
    console = Console(record=True, width=200)
    render(doc, console)
    assert USERS_ESTIMATED in console.export_text()
    # the audit's HTML and Markdown say the same words above the same table
    from costwarden.agent.reports.render import render_html, render_markdown
    from costwarden.agent.reports.sections import build_sections
    from tests.sample_results import sweep_result

    sections = build_sections(sweep_result(), billing, now=END + timedelta(hours=1))
    assert sections["economics"]["users_note"] == USERS_ESTIMATED
    page = render_html(sweep_result(), sections)
    assert USERS_ESTIMATED in page.split("Margin per tier", 1)[1].split("table-tier-margins", 1)[0]
    md = render_markdown(sweep_result(), "headline", sections)
    assert USERS_ESTIMATED in md.split("### Margin per tier", 1)[1].split("| Tier", 1)[0]
