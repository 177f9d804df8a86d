"""The HTML audit report: one self-contained file, rendered by headless Chromium with its charts and
tables; the Markdown and JSON forms carry the same headline and tables."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from costwarden.agent.cli.main import main
from costwarden.agent.reports.output import render_json, render_markdown
from costwarden.agent.reports.render import render_html
from costwarden.agent.reports.sections import build_sections
from tests.sample_results import sweep_result

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium (Debian package 'chromium', "
                                    "/usr/bin/chromium) is not installed; .ci/run installs it")


def _dump_dom(html_file: Path, tmp: Path) -> str:
    out = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", "--dump-dom",
                          html_file.as_uri()], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo audit through the real CLI, written as HTML (moto, fake GCP, demo billing files)."""
    tmp = tmp_path_factory.mktemp("html")
    out = tmp / "report.html"
    code = main(["audit", "--demo", "-f", "html", "-o", str(out), "-q", "--state-dir", str(tmp / "state")])
    assert code == 0
    return out


def test_demo_report_is_self_contained(demo_report: Path) -> None:
    text = demo_report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text.lower()  # nothing runs, nothing is fetched
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(http" not in text
    assert text.count("<svg") >= 4  # spend, waste by detector, by team, GPU heatmap


@needs_chromium
def test_chromium_renders_charts_and_tables(demo_report: Path, tmp_path: Path) -> None:
    dom = _dump_dom(demo_report, tmp_path)
    for chart in ("chart-daily-spend", "chart-waste-detector", "chart-waste-team", "chart-gpu-heatmap"):
        m = re.search(rf'<figure id="{chart}">\s*<svg[^>]*role="img"', dom)
        assert m, f"{chart} is not rendered as an inline SVG"
    # the anomaly is marked on the spend chart, and the heatmap has one row per idle GPU with a profile
    spend = dom[dom.index('id="chart-daily-spend"'):dom.index('id="table-anomalies"')]
    assert "spend anomaly" in spend and "CloudWatch" in spend
    heat = dom[dom.index('id="chart-gpu-heatmap"'):dom.index('id="economics"')]
    for name in ("llm-finetune-01", "llm-finetune-02", "llm-pretrain-a100x8"):
        assert name in heat
    assert "embeddings-batch" not in heat  # no GPU metric there: no profile, no invented row
    for table in ("table-anomalies", "table-waste-detector", "table-waste-team", "table-waste-feature",
                  "table-unit-costs", "table-tier-margins", "table-overruns", "table-reconciliation",
                  "table-findings"):
        assert f'<table id="{table}">' in dom, table
    findings = dom[dom.index('<table id="table-findings">'):]
    findings = findings[:findings.index("</table>")]
    shown = int(re.search(r"(\d+) findings<", dom[dom.index('id="headline"'):]).group(1))
    assert shown >= 10 and findings.count("<tr>") == 1 + shown  # header + one row per finding of the headline
    assert "$16,030.80" in findings and "needs_approval" in findings and "<details>" in findings
    margins = dom[dom.index('<table id="table-tier-margins">'):]
    assert "starter" in margins[:margins.index("</table>")] and "-$177.60" in margins[:margins.index("</table>")]
    headline = dom[dom.index('id="headline"'):dom.index('id="spend"')]
    assert "Monthly waste found" in headline and re.search(r"needs_approval: [1-9]\d*<", headline)


@needs_chromium
def test_screenshot(demo_report: Path, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--hide-scrollbars",
                    "--window-size=1400,3000", f"--screenshot={png}", demo_report.as_uri()],
                   capture_output=True, timeout=120, check=True)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a page with charts, not a blank one


def test_json_markdown_and_html_carry_the_same_sections() -> None:
    r = sweep_result()
    sections = build_sections(r, None, now=datetime(2026, 11, 23, tzinfo=timezone.utc))
    h = sections["headline"]
    assert (h["monthly_waste_usd"], h["projected_monthly_savings_usd"]) == (17025.37, 16030.8)  # skipped excluded
    assert h["actions_by_decision"] == {"needs_approval": 1, "skip": 1}
    assert [(t["team"], t["monthly_waste_usd"]) for t in sections["waste_by_team"]] == [
        ("research", 16030.8), ("search", 884.76), ("unassigned", 109.81)]
    assert [t["feature"] for t in sections["waste_by_feature"]] == ["helpdesk"]
    assert sections["gpu_utilization_by_hour"] == [{"resource_id": "i-1", "name": "gpu-a", "resource_type": "aws.ec2",
                                                    "instance_type": "p4d.24xlarge",
                                                    "profile": [1.0] * 12 + [None] * 12}]

    doc = json.loads(render_json(r, sections))
    assert doc["totals"]["monthly_waste_usd"] == doc["report"]["headline"]["monthly_waste_usd"] == 17025.37
    assert "report" not in json.loads(render_json(r))  # the contract alone, when no sections are asked for

    md = render_markdown(r, sections)
    assert "## Headline" in md and "$17,025.37" in md and "needs_approval 1, skip 1" in md
    assert "| research | 1 | $16,030.80 |" in md and "| gpu-a | 1 | 1 |" in md  # waste by team; GPU profile row

    page = render_html(r, sections)
    assert "$17,025.37" in page and 'id="chart-gpu-heatmap"' in page and 'id="chart-waste-team"' in page
    assert 'id="chart-daily-spend"' not in page and "No FOCUS billing export configured" in page


def test_html_escapes_every_value_and_markdown_keeps_its_cells() -> None:
    """Tags, rationales (possibly a model's words) and evidence are data: never markup in the page."""
    r = sweep_result()
    hostile = '<script>alert("x")</script> & <b>bold</b> | pipe'
    f = r.findings[0]
    f.tags["Name"], f.rationale = hostile, hostile
    f.evidence["note"] = hostile
    r.actions[0].reason = hostile
    r.warnings.append(hostile)
    sections = build_sections(r, None, now=datetime(2026, 11, 23, tzinfo=timezone.utc))
    sections["waste_by_team"].append({"team": hostile, "findings": 1, "monthly_waste_usd": -5.0})
    page = render_html(r, sections)
    assert "<script" not in page and "<b>bold" not in page
    escaped = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt; | pipe"
    assert page.count(escaped) >= 5  # name, rationale, evidence, action reason, warning (and the team row)
    assert '<tr class="neg"><td>' + escaped + "</td>" in page  # a negative amount is marked, its label escaped
    md = render_markdown(r, sections)
    assert "<script>alert(\"x\")</script> & <b>bold</b> / pipe" in md  # Markdown is not HTML-escaped; | cannot split a cell
