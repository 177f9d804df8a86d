"""Realized savings: what an executed action actually saved, measured afterwards, as pure functions.

Why: a projected figure is a promise ("stopping this p4d saves $16,030.80 a month"). A finance
lead forwards a report only when the promise is checked. After an action is `done`, Costwarden
looks at the resource again and again; the saving is real only for the hours the change held
(the instance stayed stopped, the endpoint stayed deleted).

Two ways to measure, both conservative:

- From the recorded state and price (`advance`): the action's verify step proves the change at
  `acted_at`; each later observation says whether it still holds. An interval counts only when
  the change held at both of its ends: if someone restarted the instance between two looks, we
  do not know when, so none of that interval is claimed. Realized dollars = hourly price x hours
  held; the realized monthly figure is that rate over the hours observed, scaled to a 730-hour
  month, so an instance that stayed stopped shows exactly its projected saving and one restarted
  halfway shows half.
- From billing (`realized_from_billing`): the resource's mean daily cost in the days before the
  action against the full days after it, scaled to a month. It catches what state cannot (a
  stopped instance still paying for its EBS volumes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from costwarden.state.domain import DAYS_PER_MONTH, HOURS_PER_MONTH, money

_HOUR = Decimal(3600)


@dataclass(frozen=True)
class Realized:
    """The running measurement of one action: the change held for `hours_held` of `hours_observed`."""

    hourly_usd: Decimal  # the run-rate the action removed (the resource's hourly price)
    acted_at: datetime  # when the change was verified
    observed_until: datetime  # the latest observation
    held: bool  # did the change hold at the latest observation
    hours_observed: Decimal = Decimal(0)
    hours_held: Decimal = Decimal(0)

    @property
    def realized_usd(self) -> Decimal:
        """Dollars not spent so far: hourly price x hours the change held."""
        return money(self.hourly_usd * self.hours_held)

    @property
    def realized_monthly_usd(self) -> Decimal | None:
        """The saving's monthly run-rate over the time observed; None before any time has passed."""
        if self.hours_observed <= 0:
            return None
        return money(self.hourly_usd * HOURS_PER_MONTH * self.hours_held / self.hours_observed)


def start(hourly_usd: Decimal, acted_at: datetime) -> Realized:
    """The measurement right after the verify step, which proved the change held at `acted_at`."""
    return Realized(hourly_usd=Decimal(hourly_usd), acted_at=acted_at, observed_until=acted_at, held=True)


def advance(prev: Realized, observed_at: datetime, held: bool) -> Realized:
    """Fold one observation in. Only intervals with the change holding at both ends count."""
    if observed_at <= prev.observed_until:
        return prev  # an old or repeated observation adds nothing
    span = Decimal(str((observed_at - prev.observed_until).total_seconds())) / _HOUR
    return replace(prev, observed_until=observed_at, held=held, hours_observed=prev.hours_observed + span,
                   hours_held=prev.hours_held + (span if prev.held and held else Decimal(0)))


@dataclass(frozen=True)
class BillingRealized:
    baseline_daily_usd: Decimal  # mean daily cost over the days before the action
    after_daily_usd: Decimal  # mean daily cost over the full days after it
    days_before: int
    days_after: int

    @property
    def realized_monthly_usd(self) -> Decimal:
        return money((self.baseline_daily_usd - self.after_daily_usd) * DAYS_PER_MONTH)


def realized_from_billing(daily_cost: Mapping[date, Decimal], acted_at: datetime,
                          baseline_days: int = 7) -> BillingRealized | None:
    """Mean daily cost before vs after the action (the action's own day is left out, being mixed).

    None until there is at least one full day on each side, since one side alone proves nothing.
    """
    acted_day = acted_at.date()
    before = [daily_cost.get(acted_day - timedelta(days=n), Decimal(0)) for n in range(1, baseline_days + 1)
              if any(d <= acted_day - timedelta(days=n) for d in daily_cost)]
    after_days = sorted(d for d in daily_cost if d > acted_day)
    if not before or not after_days:
        return None
    after = [daily_cost.get(after_days[0] + timedelta(days=n), Decimal(0))
             for n in range((after_days[-1] - after_days[0]).days + 1)]
    return BillingRealized(baseline_daily_usd=sum(before, Decimal(0)) / len(before),
                           after_daily_usd=sum(after, Decimal(0)) / len(after),
                           days_before=len(before), days_after=len(after))
