"""WarehouseExport: the questions FocusExport answers (total, spend_by, daily_spend,
unused_commitments, data_start/data_end), asked of a FOCUS table in Athena or BigQuery.

The collectors and reports take either one; the local DuckDB path stays the default. Every query
carries a window (the warehouse is never scanned whole), so the questions FocusExport allows without
one (open-ended windows) are refused here with a clear error.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from costwarden.tools.billing.columns import SpendRow, data_end_of, utc_naive
from costwarden.tools.billing.warehouse.queries import FocusQueries, Query, transpile
from costwarden.tools.billing.warehouse.runners import Runner, ScanLedger, open_runner
from costwarden.tools.billing.warehouse.settings import WarehouseSettings
from costwarden.tools.errors import BillingInputError

HISTORY_DAYS = 400  # how far back data_end looks for an export's last day (billing.lookback_days' maximum)


def _day(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value)) if isinstance(value, float) else Decimal(value)


class WarehouseExport:
    """One FOCUS table in a warehouse; build it once per sweep (its ledger caps the sweep's scans)."""

    def __init__(self, settings: WarehouseSettings, cost_column: str = "EffectiveCost",
                 tag_map: dict[str, list[str]] | None = None, runner: Runner | None = None,
                 now: datetime | None = None, ledger: ScanLedger | None = None) -> None:
        if cost_column not in ("EffectiveCost", "BilledCost"):
            raise BillingInputError(f"cost column {cost_column!r}: use EffectiveCost or BilledCost")
        self.settings = settings
        self.queries = FocusQueries(settings, cost_column, tag_map)
        self.runner = runner or open_runner(settings)
        # the sweep's ledger when given (one allowance for all its billing queries), else this export's
        self.ledger = ledger or ScanLedger(settings.max_bytes_scanned, settings.kind)
        self.files = [f"{settings.kind}:{settings.table}"]  # what the errors and warnings name
        self.warnings: list[str] = []
        # the latest window end asked (else the sweep's clock): data_end looks back from it
        self._latest: datetime | None = None if now is None else utc_naive(now)
        self._earliest: datetime | None = None

    def _window(self, start: datetime | date | None, end: datetime | date | None) -> tuple[datetime, datetime]:
        if start is None or end is None:
            raise BillingInputError(f"{self.files[0]}: a warehouse query needs a start and an end (the table "
                                    f"is never scanned whole)")
        s, e = utc_naive(start), utc_naive(end)
        self._latest = e if self._latest is None else max(self._latest, e)
        self._earliest = s if self._earliest is None else min(self._earliest, s)
        return s, e

    def _run(self, query: Query) -> list[tuple[Any, ...]]:
        sql = transpile(query, self.runner.dialect, self.settings.table)
        return self.runner.run(query.name, sql, self.ledger)

    # -- the questions (FocusExport's signatures) -----------------------------------------------
    def total(self, start: datetime | date | None = None, end: datetime | date | None = None,
              filters: dict[str, str] | None = None) -> dict[str, Decimal]:
        s, e = self._window(start, end)
        return {cur: _dec(cost) for cur, cost in self._run(self.queries.total(s, e, filters))}

    def spend_by(self, dims: Sequence[str], start: datetime | date | None = None,
                 end: datetime | date | None = None, filters: dict[str, str] | None = None) -> list[SpendRow]:
        s, e = self._window(start, end)
        rows = self._run(self.queries.spend_by(dims, s, e, filters))
        return [SpendRow(dict(zip(dims, r[:-2])), None, _dec(r[-1]), r[-2]) for r in rows]

    def daily_spend(self, dims: Sequence[str], start: datetime | date | None = None,
                    end: datetime | date | None = None, filters: dict[str, str] | None = None) -> list[SpendRow]:
        s, e = self._window(start, end)
        query = self.queries.daily_spend(dims, s, e, filters)
        if query is None:
            return []
        n = len(dims)
        return [SpendRow(dict(zip(dims, r[:n])), _day(r[n + 1]), _dec(r[n + 2]), r[n]) for r in self._run(query)]

    def unused_commitments(self, start: datetime | date | None = None,
                           end: datetime | date | None = None) -> list[SpendRow]:
        s, e = self._window(start, end)
        return [SpendRow({"provider": p, "service": sv}, None, _dec(c), cur)
                for p, sv, cur, c in self._run(self.queries.unused_commitments(s, e))]

    def period(self) -> tuple[datetime, datetime] | None:
        """First and last charge instants of the HISTORY_DAYS before the latest window asked."""
        if self._latest is None:
            raise BillingInputError(f"{self.files[0]}: the export's period needs the sweep's clock (now)")
        end = self._latest
        rows = self._run(self.queries.period(end - timedelta(days=HISTORY_DAYS), end))
        if not rows or rows[0][0] is None:
            return None
        return utc_naive(rows[0][0]), utc_naive(rows[0][1])

    def data_end(self) -> datetime | None:
        """Midnight after the last complete day (as FocusExport.data_end), within HISTORY_DAYS."""
        return data_end_of(self.period())

    def data_start(self) -> date | None:
        """The first day with data in the windows asked so far (budgets: every earlier day was before
        the window, not unseen)."""
        if self._earliest is None or self._latest is None:  # no window asked yet: nothing to bound it by
            return None
        rows = self._run(self.queries.period(self._earliest, self._latest))
        return None if not rows or rows[0][0] is None else utc_naive(rows[0][0]).date()

    def row_count(self) -> int | None:
        """Not counted: a COUNT(*) over the window would be a scan of its own. None, not 0."""
        return None

    def close(self) -> None:
        self.runner.close()


def open_export(billing: Any, now: datetime | None = None, ledger: ScanLedger | None = None) -> Any:
    """The bill of `billing:` (BillingSettings): the warehouse table when one is configured, else the
    local FOCUS files read with DuckDB. Both answer the same questions."""
    if billing.warehouse is not None:
        return WarehouseExport(billing.warehouse, cost_column=billing.cost_column, tag_map=billing.tag_map, now=now,
                               ledger=ledger)
    from costwarden.tools.billing.focus import FocusExport

    return FocusExport(billing.focus_paths, cost_column=billing.cost_column, tag_map=billing.tag_map,
                       tag_case_sensitive=billing.tag_keys_case_sensitive)
