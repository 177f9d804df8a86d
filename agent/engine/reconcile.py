"""Start-up reconciliation: settle every action a crash left open.

`pending` (claimed, cloud call maybe made): the resource's real state decides. If the change is
there, the action is recorded as done (without calling the cloud again). If not: an action a
person approved gives its claim back (`approved` again, so the approval is not lost) and runs
below like any approved one; an automatic one is recorded as interrupted, and the next sweep
re-plans it under a new id through the guard. A resumable tool (ToolSpec.resume: a resize that
stopped an instance to change it) is instead run again, since it reads where it stopped and does
only the rest.

`approved` (a person approved, the process died before the claim): it runs now through the same
approval thread (claim -> act -> verify), within the policy limits as they are now; if its
approval window has closed, its policy is gone or the resource is now protected, it is withdrawn
with the reason recorded and shown on its Slack message. Either way nothing runs twice and
nothing is forgotten.

`settle_at_start` is what a starting leader (and `run --once`) runs before any sweep, with the
policies it loaded: stale runs, then the above, then the approval threads a crash cut off after
their outcome was settled (so each Slack message ends with what happened).

On a shared (PostgreSQL) database another replica may be between its claim and its cloud call
right now: a claim, or an approval, younger than `claim_lease_minutes` is left alone (counted
`in_flight`) and settled by the leader's periodic check once the lease has passed
(`settle_stale`). Releasing it at once would send the cloud call a second time. On SQLite (any
database but PostgreSQL) the database belongs to one process, so everything open at start-up was
left by a dead one (the same rule as leader election: state.store.is_shared).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from costwarden.agent.config import Settings
from costwarden.agent.engine.approvals import close_withdrawn, finish_approved, finish_cut_threads
from costwarden.agent.engine.context import Providers
from costwarden.policies.errors import PolicyError
from costwarden.policies.guard import protection_match
from costwarden.policies.loader import LoadedPolicy, load_policies
from costwarden.state.clock import utcnow
from costwarden.state.lifecycle import ApprovalStatus
from costwarden.state.store import Store, as_utc, is_shared
from costwarden.tools.registry import get_tool

log = logging.getLogger("costwarden.reconcile")


def settle_at_start(settings: Settings, store: Store, policies: Mapping[str, LoadedPolicy]) -> dict[str, int]:
    """Everything a crash left open, settled before the first sweep, within `policies` (the ones
    the process loaded: limits as they are now); return counts by outcome."""
    counts = {"runs_interrupted": store.interrupt_stale_runs()}
    counts.update(reconcile_pending(store, Providers(settings, dry_run=settings.dry_run), policies=policies,
                                    open_before=lease_cutoff(settings, store)))
    counts["threads_closed"] = len(finish_cut_threads(settings, store))
    return counts


def lease_cutoff(settings: Settings, store: Store, now: datetime | None = None) -> datetime | None:
    """Claims and approvals last touched before this instant may be settled; None: all of them
    (a database only this process uses)."""
    if not is_shared(store.engine):
        return None
    return (now or utcnow()) - timedelta(minutes=settings.claim_lease_minutes)


def settle_stale(settings: Settings, store: Store, policies: Mapping[str, LoadedPolicy]) -> dict[str, int]:
    """The leader's periodic pass on a shared database: what a replica claimed or was approved on
    and left open for longer than the lease (it died) is settled like at start-up."""
    cutoff = lease_cutoff(settings, store)
    if cutoff is None:
        return {}
    return reconcile_pending(store, Providers(settings, dry_run=settings.dry_run), policies=policies,
                             open_before=cutoff)


def reconcile_pending(store: Store, providers: Any, *, policies: Mapping[str, LoadedPolicy] | None = None,
                      now: datetime | None = None, open_before: datetime | None = None) -> dict[str, int]:
    """Settle claimed (`pending`) actions, then approved unclaimed ones; return counts by outcome.

    `policies` defaults to those of `providers.settings` (the daemon's own files). With
    `open_before`, only actions last moved before it are settled; younger ones may be another
    replica's work in flight and are counted `in_flight`."""
    counts = {"done": 0, "interrupted": 0, "released": 0, "unreadable": 0, "resumed": 0, "failed": 0,
              "deferred": 0, "executed": 0, "withdrawn": 0, "unsettled": 0, "in_flight": 0}
    released = _settle_claimed(store, providers, counts, open_before)
    for outcome, n in settle_approved(store, providers, policies=policies, now=now, open_before=open_before,
                                      released=released).items():
        counts[outcome] = counts.get(outcome, 0) + n
    return counts


def _young(row: Any, open_before: datetime | None) -> bool:
    return open_before is not None and row.updated_at is not None and as_utc(row.updated_at) > open_before


def _settle_claimed(store: Store, providers: Any, counts: dict[str, int],
                    open_before: datetime | None) -> set[str]:
    """Settle the stale claims; return the ids given back to `approved` (they run next, now)."""
    released: set[str] = set()
    for row in store.actions_in_limbo():
        if _young(row, open_before):
            counts["in_flight"] += 1
            continue
        try:
            spec = get_tool(row.tool)
            state = spec.observe(providers.clients_for(spec.provider), **row.args)
        except Exception as exc:  # noqa: BLE001 - leave it pending and say why; retry next start
            counts["unreadable"] += 1
            store.append_decision(stage="reconcile", decision="unreadable", action_id=row.id, run_id=row.run_id,
                                  policy=row.policy, reason=f"cannot read the resource's state: {exc}")
            log.warning("action %s left pending: cannot read state", row.id, extra={"action_id": row.id})
            continue
        if spec.is_done(state):
            store.complete_action(row.id, ok=True, after_state=state, error=None, run_id=row.run_id,
                                  policy=row.policy, policy_hash="reconcile")
            store.append_decision(stage="reconcile", decision="done", action_id=row.id, run_id=row.run_id,
                                  policy=row.policy, reason="found already applied after a restart; not called again")
            counts["done"] += 1
        elif spec.resume:
            counts[_resume(store, providers, spec, row, state)] += 1
        elif _approved_by_a_person(store, row.id):
            store.release_claim(row.id, reason="approved, claimed, and cut off before it applied; it runs again "
                                "now, once, if the policies as they are now still allow it",
                                run_id=row.run_id, policy=row.policy, detail={"observed": state})
            released.add(row.id)
            counts["released"] += 1
        else:
            store.replan_action(row.id, reason="not applied before a restart; the next sweep re-plans it",
                                run_id=row.run_id, policy=row.policy, detail={"observed": state})
            counts["interrupted"] += 1
        log.info("reconciled action %s", row.id, extra={"action_id": row.id, "policy": row.policy})
    return released


def _approved_by_a_person(store: Store, action_id: str) -> bool:
    pair = store.get_approval(action_id)
    return pair is not None and pair[0].status == ApprovalStatus.APPROVED


def settle_approved(store: Store, providers: Any, *, policies: Mapping[str, LoadedPolicy] | None = None,
                    now: datetime | None = None, open_before: datetime | None = None,
                    released: set[str] = frozenset()) -> dict[str, int]:
    """Execute or withdraw every approved action nobody claimed (approved before `open_before`,
    if given, or `released` from a stale claim just now); return counts by outcome."""
    counts = {"executed": 0, "withdrawn": 0, "deferred": 0, "unsettled": 0, "in_flight": 0}
    waiting = store.approved_unclaimed()
    counts["in_flight"] = sum(1 for row, _ in waiting if row.id not in released and _young(row, open_before))
    waiting = [(row, a) for row, a in waiting if row.id in released or not _young(row, open_before)]
    settings = getattr(providers, "settings", None)
    if not waiting or settings is None:
        return counts
    if policies is None:
        try:
            policies = {lp.name: lp for lp in load_policies(list(settings.policies))}
        except PolicyError as exc:
            log.error("approved actions left for the next start: policies unreadable", extra={"error": str(exc)})
            counts["deferred"] += len(waiting)
            return counts
    now = now or utcnow()
    protected = store.protected_keys()
    for row, approval in waiting:
        reason = _why_not(store, row, approval, policies, protected, now)
        try:
            if reason is not None:
                if store.withdraw_action(row.id, reason=reason, run_id=row.run_id, policy=row.policy):
                    close_withdrawn(settings, store, row.id, reason=reason)
                    counts["withdrawn"] += 1
            elif getattr(providers, "dry_run", False):
                store.append_decision(stage="reconcile", decision="deferred", action_id=row.id, run_id=row.run_id,
                                      policy=row.policy, reason="approved but not executed; dry-run is on, so it "
                                      "runs (or is withdrawn) at the next start without dry-run")
                counts["deferred"] += 1
            else:
                finish_approved(settings, store, row.id, actor=approval.decided_by or "")
                counts["executed"] += 1
        except Exception as exc:  # noqa: BLE001 - one action must not stop the others; retried next start
            counts["unsettled"] += 1
            log.error("approved action %s not settled", row.id,
                      extra={"action_id": row.id, "error": f"{exc.__class__.__name__}: {exc}"})
    return counts


def _why_not(store: Store, row: Any, approval: Any, policies: Mapping[str, LoadedPolicy], protected: set[str],
             now: datetime) -> str | None:
    """Why an approved action may no longer run, or None if it may."""
    if approval.expires_at is not None and as_utc(approval.expires_at) <= now:
        return "approved, but the process stopped before it ran and its approval window has since closed"
    lp = policies.get(row.policy)
    if lp is None:
        return f"approved, but its policy {row.policy!r} is no longer loaded"
    if row.resource_key in protected:
        return "approved, but the resource has since been protected"
    finding = store.get_finding(row.finding_id)
    hit = protection_match(dict(finding.tags or {}) if finding else {}, lp.policy.limits.protected_tags)
    if hit:
        return f"approved, but the resource is now protected by the policy ({hit})"
    return None


def _resume(store: Store, providers: Any, spec: Any, row: Any, state: dict[str, Any]) -> str:
    """Finish a resumable action (ToolSpec.resume) by running its tool again: it was approved or
    allowed once and cut off half-way, and the tool reads the real state to do only what is left.
    In dry-run nothing may change, so it stays pending until a start without dry-run."""
    if getattr(providers, "dry_run", False):
        store.append_decision(stage="reconcile", decision="deferred", action_id=row.id, run_id=row.run_id,
                              policy=row.policy, reason="cut off half-way; dry-run is on, so it is finished at the "
                              "next start without dry-run", detail={"observed": state})
        return "deferred"
    try:
        out = spec.run(providers.clients_for(spec.provider), **row.args)
        ok, after, error = out.ok, out.after, (None if out.ok else out.detail)
    except Exception as exc:  # noqa: BLE001 - the record must close with the reason
        ok, after, error = False, None, str(exc) or exc.__class__.__name__
    store.complete_action(row.id, ok=ok, after_state=after, error=error, run_id=row.run_id, policy=row.policy,
                          policy_hash="reconcile")
    store.append_decision(stage="reconcile", decision="resumed" if ok else "failed", action_id=row.id,
                          run_id=row.run_id, policy=row.policy,
                          reason=("cut off half-way before a restart; finished by running it again from the "
                                  "state found") if ok else f"cut off half-way; running it again failed: {error}",
                          detail={"observed": state})
    return "resumed" if ok else "failed"
