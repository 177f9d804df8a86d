"""What the leader does between sweeps: withdraw expired approvals and, on a shared database, settle
what a dead replica claimed (every minute), and hourly measure
realized savings, prune finished approval checkpoints and post the weekly digest.

Each job logs its own failure and returns: the daemon's loop must never die of a housekeeping
error, and each of these is simply tried again at its next turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from costwarden.agent.config import Settings
from costwarden.state.store import Store

log = logging.getLogger("costwarden.daemon")


def _failed(what: str, exc: Exception) -> None:
    log.error(what, extra={"error": f"{exc.__class__.__name__}: {exc}"})


def expire_approvals(settings: Settings, store: Store) -> None:
    from costwarden.agent.engine.approvals import expire_due

    try:
        expired = expire_due(settings, store)
    except Exception as exc:  # noqa: BLE001 - retried on the next check
        return _failed("approval expiry check failed", exc)
    if expired:
        log.info("approvals withdrawn after expiry", extra={"action_ids": expired})


def settle_stale_claims(settings: Settings, store: Store, policies: Mapping[str, Any]) -> None:
    """On a shared database, what a dead replica claimed or was approved on, past the claim lease."""
    from costwarden.agent.engine.reconcile import settle_stale

    try:
        counts = settle_stale(settings, store, policies)
    except Exception as exc:  # noqa: BLE001 - tried again at the next check
        return _failed("settling stale claims failed", exc)
    settled = {k: v for k, v in counts.items() if v and k != "in_flight"}
    if settled:
        log.info("settled actions a stopped replica left open", extra=settled)


def housekeeping(settings: Settings, store: Store) -> None:
    """Hourly: measure what executed actions really saved, delete the checkpoints of approval
    threads finished longer ago than `checkpoint_retention_days`; weekly: the Slack digest."""
    from costwarden.agent.engine.approvals import prune_finished
    from costwarden.agent.engine.context import Providers
    from costwarden.agent.engine.realized import refresh_realized

    try:
        measured = refresh_realized(store, Providers(settings, dry_run=True), billing=settings.billing)
        if measured:
            log.info("realized savings measured", extra={"actions": len(measured)})
    except Exception as exc:  # noqa: BLE001 - measured again next hour
        _failed("realized savings measurement failed", exc)
    try:
        prune_finished(settings)
    except Exception as exc:  # noqa: BLE001 - pruned next hour
        _failed("checkpoint pruning failed", exc)
    if settings.slack.enabled:
        weekly_digest(settings, store)


def weekly_digest(settings: Settings, store: Store) -> None:
    """Post the digest if none was posted in the last 7 days and the week found something."""
    from costwarden.agent.engine.approvals import slack_for
    from costwarden.agent.reports.digest import digest_from_store, post_digest, team_tag_keys

    now = datetime.now(timezone.utc)
    last = store.last_decision_at(stage="digest", decision="posted")
    if last is not None and now - last < timedelta(days=7):
        return
    try:
        digest = digest_from_store(store, since=now - timedelta(days=7), now=now,
                                   tag_keys=team_tag_keys(settings.billing.tag_map))
        if not digest["findings"]:
            return  # a week with nothing found is not worth a message
        posted = post_digest(slack_for(settings), digest, channel=settings.slack.channel,
                             team_channels=settings.slack.team_channels)
    except Exception as exc:  # noqa: BLE001 - tried again next hour
        return _failed("weekly digest not posted", exc)
    store.append_decision(stage="digest", decision="posted", reason=f"weekly digest to {len(posted)} channels")
