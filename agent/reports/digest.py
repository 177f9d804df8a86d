"""The weekly digest: the report's headline and top findings as one Slack message, plus one per
team whose channel is configured.

Why a digest and not just the report file: approvals reach the people who must act, but the
people who pay (a finance lead, a team's manager) read Slack, not HTML attachments. Each team
sees its own waste in its own channel; the default channel gets the whole picture.

A finding's team is the first of the team tag keys present on its resource: the same keys
that attribute FOCUS spend to teams (billing.tag_map.team; default team, owner), so a team is
one name in the bill and in the digest. Channels come from slack.team_channels.

Posting goes through tools.slack.SlackNotifier.post (retries, rate limits, no token in errors).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from costwarden.agent.engine.sweep import SweepResult
from costwarden.agent.reports.rest import other_label, top_with_rest

TOP_N = 5
SECTION_CHARS = 2900  # Slack caps a section's text at 3,000 characters
DEFAULT_TEAM_KEYS = ("team", "owner")


def team_tag_keys(tag_map: dict[str, list[str]] | None) -> list[str]:
    """The tag keys naming a finding's team: billing.tag_map's `team` entry, else the defaults."""
    return list((tag_map or {}).get("team") or DEFAULT_TEAM_KEYS)


def team_of(tags: dict[str, str] | None, keys: Iterable[str]) -> str | None:
    """The first non-empty value among `keys` in `tags`; None when the resource names no team."""
    tags = tags or {}
    return next((str(tags[k]) for k in keys if tags.get(k)), None)


def _finding(resource: str, detector: str, waste: float, summary: str, team: str | None) -> dict[str, Any]:
    return {"resource": resource, "detector": detector, "monthly_waste_usd": round(waste, 2),
            "summary": summary, "team": team}


def digest_from_result(result: SweepResult, *, since: datetime, now: datetime,
                       tag_keys: Iterable[str] = DEFAULT_TEAM_KEYS) -> dict[str, Any]:
    """A digest of one sweep (e.g. the week's last), with each finding's team from its tags."""
    keys = list(tag_keys)
    findings = [_finding(f.tags.get("Name") or f.resource_id, f.detector, float(f.monthly_waste_usd),
                         f.rationale or f.detector, team_of(f.tags, keys))
                for f in result.findings]
    decisions: dict[str, int] = {}
    for a in result.actions:
        decisions[a.decision] = decisions.get(a.decision, 0) + 1
    return {"since": since, "until": now, "findings": findings,
            "projected_monthly_savings_usd": float(result.projected_monthly_savings_usd),
            "actions_by_decision": decisions, "realized_monthly_usd": None}


def digest_from_store(store: Any, *, since: datetime, now: datetime,
                      tag_keys: Iterable[str] = DEFAULT_TEAM_KEYS) -> dict[str, Any]:
    """A digest of everything recorded in the window, each finding counted once (its latest run).

    Each finding's team comes from the tags stored with it. Rows written before the findings
    table had a tags column carry none: they reach the default channel only.
    """
    keys = list(tag_keys)
    from costwarden.agent.reports.window import store_window

    w = store_window(store, since)
    latest: dict[str, Any] = {}
    for f in store.window(since)["findings"]:
        latest[f.fingerprint] = f
    findings = [_finding((f.tags or {}).get("Name") or f.resource_id, f.detector, float(f.monthly_waste_usd),
                         f.rationale or f.detector, team_of(f.tags, keys))
                for f in latest.values()]
    decisions: dict[str, int] = {}
    for row in w["actions"]["by_decision_status"]:
        decisions[row["decision"]] = decisions.get(row["decision"], 0) + row["actions"]
    return {"since": since, "until": now, "findings": findings,
            "projected_monthly_savings_usd": w["totals"]["projected_monthly_usd"],
            "actions_by_decision": decisions, "realized_monthly_usd": w["totals"]["realized_monthly_usd"]}


def _cut(line: str, room: int) -> str:
    return line if len(line) <= room else line[:room - 1] + "…"


def digest_blocks(digest: dict[str, Any], *, team: str | None = None, top_n: int = TOP_N) -> tuple[str, list[dict[str, Any]]]:
    """Block Kit for the digest (optionally one team's share of it) and its plain-text fallback.

    The top `top_n` findings are listed, then one "other (N)" line with the waste of the rest, so
    the lines add up to the monthly waste the message states (a sixth finding is listed itself)."""
    findings = [f for f in digest["findings"] if team is None or f["team"] == team]
    findings.sort(key=lambda f: -f["monthly_waste_usd"])
    waste = sum(f["monthly_waste_usd"] for f in findings)
    span = f"{digest['since']:%Y-%m-%d} to {digest['until']:%Y-%m-%d}"
    who = f" for team {team}" if team else ""
    text = (f"Costwarden weekly digest{who} ({span}): ${waste:,.2f}/month of waste in {len(findings)} findings")
    facts = [("Monthly waste found", f"${waste:,.2f}"), ("Findings", str(len(findings)))]
    if team is None:
        facts.append(("Projected savings", f"${digest['projected_monthly_savings_usd']:,.2f}/month"))
        facts.append(("Actions by decision", ", ".join(f"{d} {n}" for d, n in sorted(digest["actions_by_decision"].items()))
                      or "none"))
        if digest.get("realized_monthly_usd") is not None:
            facts.append(("Realized savings", f"${digest['realized_monthly_usd']:,.2f}/month"))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Costwarden weekly digest{who}"[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": span}]},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts]},
    ]
    if findings:
        shown = top_with_rest(findings, top_n + 1, "resource", ["monthly_waste_usd"])
        head = "*Top findings*\n"
        # each line is cut to its share of what the heading and the line breaks leave, so the last line always shows
        room = (SECTION_CHARS - len(head) - (len(shown) - 1)) // len(shown)
        lines = [_cut(f"{i}. *{f['resource']}* ({f['detector']}): ${f['monthly_waste_usd']:,.2f}/month. {f['summary']}"
                      if "other" not in f else
                      f"{i}. {other_label(f['other'])} findings: ${f['monthly_waste_usd']:,.2f}/month", room)
                 for i, f in enumerate(shown, 1)]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": head + "\n".join(lines)}})
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No waste found this week."}})
    return text, blocks


def post_digest(notifier: Any, digest: dict[str, Any], *, channel: str | None,
                team_channels: dict[str, str] | None = None, top_n: int = TOP_N) -> list[tuple[str, str]]:
    """Post the whole digest to `channel` and each team's share to its channel; return (channel, ts)s.

    A team with a channel but no finding gets no message: an empty digest is noise.
    """
    posted = []
    if channel:
        text, blocks = digest_blocks(digest, top_n=top_n)
        posted.append(notifier.post(channel, text, blocks))
    teams = {f["team"] for f in digest["findings"] if f["team"]}
    for team, team_channel in sorted((team_channels or {}).items()):
        if team in teams:
            text, blocks = digest_blocks(digest, team=team, top_n=top_n)
            posted.append(notifier.post(team_channel, text, blocks))
    return posted


def last_week(now: datetime) -> datetime:
    return now - timedelta(days=7)
