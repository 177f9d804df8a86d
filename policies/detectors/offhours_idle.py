"""off-hours-idle: machines busy by day and idle every night (or every weekend), billing round the clock.

A stop/start schedule removes those hours from the bill. Design:

- The hourly series (GPU utilization, else CPU) is laid out in the resource's local wall-clock
  time (param `timezone`, or the resource's `costwarden:timezone` tag), one slot per local date and
  hour, through zoneinfo. A window is wall-clock hours ("23:00-06:00"), so it stays put across a
  DST change; the hour a fall-back day repeats counts as busy if either occurrence was, and the
  hour a spring-forward day skips is simply missing.
- A window recurs on a class of days: every day, weekdays (Mon-Fri) or the weekend (Sat, Sun),
  classed by the day the window starts (Fri 23:00-06:00 is a weekday window). It holds on a day
  when no hour in it is busy and at least `min_coverage` of its hours have data; it recurs when it
  holds on at least `min_day_fraction` of the days that could be judged (at least two), so one
  late night does not sink it. Daily and weekday windows are at most 23 hours (a machine must come
  up once a day for them to be schedules); a weekend window may run up to 47 (Sat 00:00 to Mon 07:00).
- Per class the longest recurring window of at least `min_window_hours` wins; the schedule is the
  set of classes (daily; weekdays; weekend; weekdays + weekend; daily + weekend) whose windows
  cover the most distinct hours of the week.
- A resource idle almost all the time (95th percentile below the idle threshold) is idle-gpu's
  finding: no schedule is proposed for it.

Saving = hours of the week inside the schedule x hourly price x 52 / 12. The matching action
tags the resource with its window (a `schedule` action); until it exists the policy reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from costwarden.policies.detectors.base import DetectContext, Detector, DetectorParams, percentile
from costwarden.policies.detectors.words import days as day_words
from costwarden.policies.registry import detectors
from costwarden.state.domain import Finding, MetricRequest, Observation, Resource

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CLASSES: dict[str, tuple[tuple[int, ...], int]] = {  # name -> (start weekdays, longest window in hours)
    "daily": ((0, 1, 2, 3, 4, 5, 6), 23),
    "weekdays": ((0, 1, 2, 3, 4), 23),
    "weekend": ((5, 6), 47),
}
COMBINATIONS = (("daily",), ("weekdays",), ("weekend",), ("weekdays", "weekend"), ("daily", "weekend"))
MIN_DAYS_JUDGED = 2
WEEKS_PER_MONTH = Decimal(52) / Decimal(12)


@dataclass(frozen=True)
class Profile:
    """Hourly values in local wall-clock time: slot d*24+h is hour h of date first_date + d."""

    first_date: date
    values: list[float | None]

    def weekday(self, day_index: int) -> int:
        return (self.first_date + timedelta(days=day_index)).weekday()

    @property
    def days(self) -> int:
        return len(self.values) // 24


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]  # weekdays (0 = Monday) the window starts on
    start_hour: int
    hours: int
    held: int  # days on which it held
    judged: int  # days with enough data to judge

    def week_slots(self) -> set[int]:
        """Hours of the week (0 = Monday 00:00) the window covers."""
        return {(d * 24 + self.start_hour + k) % 168 for d in self.days for k in range(self.hours)}


def local_profile(points: list[tuple[float, float]], tz: ZoneInfo) -> Profile:
    """Lay epoch-second datapoints out by local date and hour. Two datapoints in one local slot
    (the repeated hour when clocks go back) keep the higher value: busy wins."""
    if not points:
        return Profile(date(1970, 1, 1), [])
    stamps = [(datetime.fromtimestamp(ts, timezone.utc).astimezone(tz), v) for ts, v in points]
    first = min(t.date() for t, _ in stamps)
    last = max(t.date() for t, _ in stamps)
    values: list[float | None] = [None] * (((last - first).days + 1) * 24)
    for t, v in stamps:
        i = (t.date() - first).days * 24 + t.hour
        prev = values[i]
        values[i] = v if prev is None else max(prev, v)
    return Profile(first, values)


def find_window(profile: Profile, idle_below: float, start_days: tuple[int, ...], *, min_hours: int,
                max_hours: int, min_day_fraction: float, min_coverage: float) -> Window | None:
    """The longest window (start hour, length) that holds on at least `min_day_fraction` of the
    judged days among `start_days`; ties go to the larger share of days, then the earlier hour.
    Prefix sums make each (day, start, length) check O(1), and lengths no busy-free stretch of the
    data could support are never tried, so a busy machine costs one pass."""
    n = len(profile.values)
    busy_sum, known_sum = [0] * (n + 1), [0] * (n + 1)
    for i, v in enumerate(profile.values):
        busy_sum[i + 1] = busy_sum[i] + (1 if v is not None and v >= idle_below else 0)
        known_sum[i + 1] = known_sum[i] + (1 if v is not None else 0)
    days = [d for d in range(profile.days) if profile.weekday(d) in start_days]
    # A window that holds has at least min_coverage x its length of known idle hours in one busy-free
    # stretch of the data, so no length beyond the longest such stretch / min_coverage can hold.
    known = [i for i, v in enumerate(profile.values) if v is not None]
    run, longest = 0, 0
    for i in range(known[0], known[-1] + 1) if known else ():
        v = profile.values[i]
        run = 0 if v is not None and v >= idle_below else run + 1
        longest = max(longest, run)
    for length in range(min(max_hours, int(longest / min_coverage)), min_hours - 1, -1):
        need_known = math.ceil(min_coverage * length)
        best: Window | None = None
        for start in range(24):
            held = judged = 0
            for d in days:
                i = d * 24 + start
                if i + length > n or known_sum[i + length] - known_sum[i] < need_known:
                    continue
                judged += 1
                held += busy_sum[i + length] == busy_sum[i]
            if judged < MIN_DAYS_JUDGED or held < min_day_fraction * judged:
                continue
            if best is None or held / judged > best.held / best.judged:
                best = Window(start_days, start, length, held, judged)
        if best is not None:
            return best
    return None


def best_schedule(windows: dict[str, Window]) -> tuple[list[Window], int]:
    """The combination of day-class windows that covers the most hours of the week (fewest rules on a tie)."""
    best: tuple[list[Window], int] = ([], 0)
    for combo in COMBINATIONS:
        if not all(c in windows for c in combo):
            continue
        chosen = [windows[c] for c in combo]
        hours = len(set().union(*(w.week_slots() for w in chosen)))
        if hours > best[1]:
            best = (chosen, hours)
    return best


def describe_days(days: tuple[int, ...]) -> str:
    if days == CLASSES["daily"][0]:
        return "every day"
    if days == CLASSES["weekdays"][0]:
        return "Mon-Fri"
    if days == CLASSES["weekend"][0]:
        return "Sat-Sun"
    return ",".join(DAY_NAMES[d] for d in days)


def rule(w: Window) -> dict[str, object]:
    end = w.start_hour + w.hours
    return {"days": describe_days(w.days), "stop_at": f"{w.start_hour:02d}:00", "start_at": f"{end % 24:02d}:00",
            "start_days_later": end // 24, "hours": w.hours, "held_days": w.held, "judged_days": w.judged}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {name!r} (e.g. 'Europe/Berlin', 'America/New_York')") from None


class OffHoursIdleParams(DetectorParams):
    lookback_days: int = Field(14, ge=2, le=63, description=(
        "Days of hourly metrics; 14 gives two weekends of evidence."))
    timezone: str = Field("UTC", description="IANA name of the local time the schedule is in.")
    timezone_tag: str | None = Field("costwarden:timezone", description="A resource tag that overrides `timezone`.")
    gpu_idle_pct: float = Field(5.0, gt=0, le=100, description="An hour is idle when GPU utilization is below this.")
    cpu_idle_pct: float = Field(10.0, gt=0, le=100, description="The same for CPU, when there is no GPU data.")
    min_window_hours: int = Field(4, ge=1, le=23, description="Shortest window worth a schedule.")
    min_day_fraction: float = Field(0.8, gt=0, le=1, description="Share of judged days the window must hold on.")
    min_coverage: float = Field(0.8, gt=0, le=1, description="Share of hours that must have datapoints.")
    percentile: float = Field(95.0, gt=0, le=100, description=(
        "A machine whose whole-lookback percentile is below the idle level is idle-gpu's finding, not this one."))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        _zone(v)
        return v


@detectors.register("off-hours-idle")
class OffHoursIdle(Detector):
    resource_types = ("aws.ec2", "gcp.compute", "k8s.gpu-node")
    permissions = ("cloudwatch:GetMetricData", "monitoring.timeSeries.list")  # the series it asks the collector for
    Params = OffHoursIdleParams
    params: OffHoursIdleParams

    @property
    def lookback_hours(self) -> int:
        return self.params.lookback_days * 24

    def wants(self, resource: Resource) -> bool:
        """Running machines of any kind: a dev box idle at night wastes money whether or not it has GPUs."""
        return resource.state == "running"

    def metrics(self) -> list[MetricRequest]:
        return [MetricRequest("gpu_utilization", "Average"), MetricRequest("cpu_utilization", "Average")]

    def detect(self, obs: Observation, ctx: DetectContext) -> Finding | None:
        p = self.params
        r = obs.resource
        needed = int(self.lookback_hours * p.min_coverage)
        signal, threshold = "gpu_utilization", p.gpu_idle_pct
        series = obs.series.get("gpu_utilization")
        if series is None or len(series.points) < needed:
            signal, threshold = "cpu_utilization", p.cpu_idle_pct
            series = obs.series.get("cpu_utilization")
            if series is None or len(series.points) < needed:  # neither signal covered: say so, never guess
                return self.insufficient(obs, ctx, {m: self.coverage(obs, m) for m in
                                                    ("gpu_utilization", "cpu_utilization")}, required=p.min_coverage)
        values = series.values
        if percentile(values, p.percentile) < threshold:
            return None  # idle all the time: idle-gpu's finding
        tz_name = self._timezone(r, ctx)
        profile = local_profile(series.points, ZoneInfo(tz_name))
        windows = {}
        for name, (days, longest) in CLASSES.items():
            w = find_window(profile, threshold, days, min_hours=p.min_window_hours, max_hours=longest,
                            min_day_fraction=p.min_day_fraction, min_coverage=p.min_coverage)
            if w is not None:
                windows[name] = w
        chosen, hours_per_week = best_schedule(windows)
        if not chosen:
            return None
        price = ctx.price_of(r)
        hourly = price.hourly_usd
        if hourly is None:
            ctx.warnings.append(f"no on-demand price for {r.kind} in {r.region}: {r.resource_id}'s off-hours "
                                "schedule is reported as unpriced")
        saving = Decimal(hours_per_week) * (hourly or Decimal(0)) * WEEKS_PER_MONTH
        rules = [rule(w) for w in chosen]
        text = "; ".join(f"{x['days']} {x['stop_at']}-{x['start_at']}" + _later(int(x["start_days_later"]))
                         for x in rules)
        evidence = {
            "signal": f"{signal}_profile",
            "instance_type": r.kind,
            "lookback_days": p.lookback_days,
            "datapoints": len(values),
            "idle_threshold_pct": threshold,
            f"util_p{p.percentile:g}_pct": round(percentile(values, p.percentile), 2),
            "util_by_local_hour_pct": _hourly_means(profile),
            "schedule": {"timezone": tz_name, "rules": rules},
            # the longest rule, flat, in the form the `schedule` action reads (window_start/_end, timezone, days)
            **_flat(max(rules, key=lambda x: int(x["hours"])), tz_name),
            "hours_per_week": hours_per_week,
            "hourly_price_usd": float(hourly) if hourly is not None else None,
            "price_source": price.source,
            "saving_formula": "hours_per_week x hourly_price_usd x 52 / 12",
            "summary": (f"{r.kind} is idle {text} ({tz_name} time) on at least {p.min_day_fraction:.0%} of days over "
                        f"{day_words(p.lookback_days)} while busy at other times: stopping it then saves "
                        f"{hours_per_week} h/week x ${hourly or 0:.4f}/h x 52/12 = ${saving:,.2f}/month."),
        }
        return self.finding(obs, ctx, evidence=evidence, monthly_waste=saving,
                            confidence="high" if signal == "gpu_utilization" else "medium")

    def _timezone(self, r: Resource, ctx: DetectContext) -> str:
        tag = r.tags.get(self.params.timezone_tag or "") if self.params.timezone_tag else None
        if tag:
            try:
                _zone(tag)
                return tag
            except ValueError as exc:
                ctx.warnings.append(f"{r.resource_id}: tag {self.params.timezone_tag}: {exc}; using "
                                    f"{self.params.timezone}")
        return self.params.timezone


def _flat(rule_: dict[str, object], tz_name: str) -> dict[str, object]:
    return {"window_start": rule_["stop_at"], "window_end": rule_["start_at"], "timezone": tz_name,
            "days": rule_["days"]}


def _later(days: int) -> str:
    return "" if days == 0 else " the next day" if days == 1 else f" {days} days later"


def _hourly_means(profile: Profile) -> list[float | None]:
    """Mean per local hour of day, for the report's heatmap (24 values, None where no data)."""
    sums, counts = [0.0] * 24, [0] * 24
    for i, v in enumerate(profile.values):
        if v is not None:
            sums[i % 24] += v
            counts[i % 24] += 1
    return [round(sums[h] / counts[h], 2) if counts[h] else None for h in range(24)]
