"""The store: one object through which every run, finding, action and decision is written.

Writes happen as the sweep goes (not at its end), each in its own short transaction, so a
crash at any point leaves a truthful record of what was decided and done. `Store` gathers the
record kinds of the modules beside this one (runs.py, actions.py, approvals.py, decisions.py, parts.py over db.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from costwarden.state.clock import utcnow
from costwarden.state.store.actions import ActionRecords
from costwarden.state.store.approvals import ApprovalRecords
from costwarden.state.store.db import StoreError, as_utc, is_shared, safe_url
from costwarden.state.store.decisions import DecisionRecords
from costwarden.state.store.parts import PartRecords
from costwarden.state.store.runs import RunRecords

__all__ = ["Store", "StoreError", "as_utc", "is_shared", "safe_url", "since_hours"]


class Store(RunRecords, ActionRecords, ApprovalRecords, DecisionRecords, PartRecords):
    """Every record kind over one database: `Store(url)` opens it (and migrates it to head)."""


def since_hours(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)
