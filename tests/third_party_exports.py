"""FOCUS 1.2 exports nobody here wrote, and the totals they should give, computed without Costwarden.

The exports come from `focus-data-toolkit` (PyPI, an independent generator: AWS, Azure and GCP
profiles, commitments, tax, credits). Its rows cover May 2026; `write_exports` can move them by whole
days (to end at today's midnight, say) so the wall-clock windows see them. `Expected` sums the CSV
files again with `csv` and `Decimal` alone: no DuckDB, no code of ours, so a total that matches is
a total checked. Shared by tests/test_third_party_focus.py and bench/third_party_focus.py.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

PROVIDERS = ("aws", "azure", "gcp")
DATE_COLUMNS = ("BillingPeriodStart", "BillingPeriodEnd", "ChargePeriodStart", "ChargePeriodEnd")
COST_COLUMNS = ("BilledCost", "EffectiveCost")
GENERATED_END = datetime(2026, 6, 1, tzinfo=timezone.utc)  # the toolkit's billing period is May 2026
CHUNK = 50_000  # rows generated per call: the toolkit holds a whole call's rows in memory


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def shift_days_to_end_at(end: datetime) -> int:
    """Whole days that move the generated exports so their last charge period ends at `end`'s midnight."""
    return (end.astimezone(timezone.utc).date() - GENERATED_END.date()).days


def _generated(provider: str, rows: int, seed: int) -> list[dict[str, str]]:
    from focus_data_toolkit.generators import get_generator

    data = get_generator(provider, "1.2").generate_csv_bytes(rows, seed, include_credits=True)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def write_exports(dest: Path, rows: int, seed: int, shift_days: int = 0) -> list[Path]:
    """One CSV per provider, `rows` rows in all, generated with `seed` (credits included) and moved by
    `shift_days`. Past CHUNK rows per provider, the file is several toolkit runs (seeds derived from
    `seed`) written one after the other, so a million rows never sit in memory at once."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    per_provider = [rows // len(PROVIDERS) + (1 if i < rows % len(PROVIDERS) else 0) for i in range(len(PROVIDERS))]
    for provider, n in zip(PROVIDERS, per_provider):
        path = dest / f"{provider}-focus-1.2-seed{seed}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = None
            for part, start in enumerate(range(0, n, CHUNK)):
                chunk = _generated(provider, min(CHUNK, n - start), seed if part == 0 else seed * 1000 + part)
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(chunk[0]), lineterminator="\n")
                    writer.writeheader()
                for row in chunk:
                    if shift_days:
                        for col in DATE_COLUMNS:
                            if row[col]:
                                moved = parse_ts(row[col]) + timedelta(days=shift_days)
                                row[col] = moved.strftime("%Y-%m-%dT%H:%M:%SZ")
                    writer.writerow(row)
        paths.append(path)
    return paths


def _days(start: datetime, end: datetime) -> list[date]:
    """The UTC days a charge period touches: a row over several days is spread evenly over them."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass
class Expected:
    """Exact sums of the exports, per cost column: the whole files, per provider and service, per
    sub-account and day (multi-day rows spread evenly), per currency."""

    rows: int = 0
    total: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    by_service: dict[str, dict[tuple[str, str], Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal)))
    by_sub_account_day: dict[str, dict[tuple[str, date], Decimal]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal)))
    currencies: set[str] = field(default_factory=set)
    first_start: datetime | None = None
    last_end: datetime | None = None

    @classmethod
    def of(cls, paths: list[Path]) -> Expected:
        exp = cls()
        for path in paths:
            with path.open(newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    exp.add(row)
        return exp

    def add(self, row: dict[str, str]) -> None:
        self.rows += 1
        self.currencies.add(row["BillingCurrency"])
        start, end = parse_ts(row["ChargePeriodStart"]), parse_ts(row["ChargePeriodEnd"])
        self.first_start = start if self.first_start is None else min(self.first_start, start)
        self.last_end = end if self.last_end is None else max(self.last_end, end)
        days = _days(start, end)
        for col in COST_COLUMNS:
            amount = Decimal(row[col] or "0")
            self.total[col] += amount
            self.by_service[col][(row["ProviderName"], row["ServiceName"])] += amount
            for d in days:
                self.by_sub_account_day[col][(row["SubAccountId"], d)] += amount / len(days)

    def sub_account_spend(self, col: str, first: date, last: date) -> dict[str, Decimal]:
        """Spend per SubAccountId over the days [first, last]."""
        out: dict[str, Decimal] = defaultdict(Decimal)
        for (sub, d), amount in self.by_sub_account_day[col].items():
            if first <= d <= last:
                out[sub] += amount
        return dict(out)
