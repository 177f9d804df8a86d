"""How Costwarden writes its marks and schedules on a resource, and reads them back. Pure functions.

AWS tags take almost anything, so they stay readable: `costwarden:op=stop@2026-11-30`,
`costwarden:schedule=23:00-06:00 Europe/Berlin mon,tue,wed,thu,fri`. GCP labels allow only up to
63 lowercase letters, digits, '-' and '_', so the same facts are encoded for them:
`costwarden-op=stop_2026-11-30`, `costwarden-schedule=2300-0600_mtwtf--_europe--berlin` (days as
a seven-letter mask Monday..Sunday, '-' for a day off; '/' in the zone name as '--').
Readers accept both forms, so a detector does not care which cloud wrote the mark.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache

from costwarden.policies.schema import WEEKDAYS, ChangeWindow
from costwarden.state.domain import HOURS_PER_MONTH

_OP = re.compile(r"^([a-z][a-z-]*)[@_](\d{4}-\d{2}-\d{2})$")
_AWS_SCHEDULE = re.compile(r"^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})\s+(\S+)(?:\s+([a-z,]+))?$", re.I)
_GCP_SCHEDULE = re.compile(r"^(\d{4})-(\d{4})_([mtwfs-]{7})_([a-z0-9_-]+)$")
_MASK = "mtwtfss"
_LABEL_OK = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class MarkError(ValueError):
    """A tag or label value that is not in the form Costwarden writes."""


def tag_key(key: str, provider: str) -> str:
    """The key as the provider allows it: unchanged on AWS; on GCP lowercased, with ':' and any other
    character a label key may not hold turned into '-' (`costwarden:op` -> `costwarden-op`)."""
    if provider != "gcp":
        return key
    out = re.sub(r"[^a-z0-9_-]", "-", key.lower())
    if not _LABEL_OK.match(out):
        raise MarkError(f"tag key {key!r} cannot be a GCP label key (it must start with a letter, 63 characters at most)")
    return out


# -- mark-for-op ---------------------------------------------------------------------------------

def op_prefix(op: str, provider: str) -> str:
    return f"{op}_" if provider == "gcp" else f"{op}@"


def encode_op(op: str, due: date, provider: str) -> str:
    return f"{op_prefix(op, provider)}{due.isoformat()}"


def decode_op(value: str) -> tuple[str, date]:
    m = _OP.match(str(value).strip())
    if not m:
        raise MarkError(f"{value!r} is not <op>@<YYYY-MM-DD>")
    try:
        return m.group(1), date.fromisoformat(m.group(2))
    except ValueError:
        raise MarkError(f"{value!r}: {m.group(2)} is not a date") from None


# -- the stop mark ------------------------------------------------------------------------------

def parse_stamp(value: str) -> datetime | None:
    """The UTC time a stop mark holds (`2026-11-30T23:00:05Z` on AWS, `20261130t230005z` on GCP), or None."""
    v = str(value or "").strip()
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y%m%dt%H%M%Sz"):
        try:
            return datetime.strptime(v, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


# -- schedules ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _zones_by_lower() -> dict[str, str]:
    from zoneinfo import available_timezones

    return {z.lower(): z for z in available_timezones()} | {"utc": "UTC"}


def encode_schedule(window: ChangeWindow, provider: str) -> str:
    start, end = window.start.strftime("%H:%M"), window.end.strftime("%H:%M")
    if provider != "gcp":
        days = "" if set(window.days) == set(WEEKDAYS) else " " + ",".join(d for d in WEEKDAYS if d in window.days)
        return f"{start}-{end} {window.timezone}{days}"
    mask = "".join(_MASK[i] if d in window.days else "-" for i, d in enumerate(WEEKDAYS))
    tz = window.timezone.lower().replace("/", "--")
    value = f"{start.replace(':', '')}-{end.replace(':', '')}_{mask}_{tz}"
    if not re.fullmatch(r"[a-z0-9_-]{1,63}", value):
        raise MarkError(f"time zone {window.timezone!r} cannot be written in a GCP label ({value!r})")
    return value


def decode_schedule(value: str) -> ChangeWindow:
    """A tagged schedule back as a window; a malformed one is a MarkError naming what is wrong."""
    v = str(value or "").strip()
    m = _GCP_SCHEDULE.match(v)
    if m:
        start, end, mask, tz = m.groups()
        zone = _zones_by_lower().get(tz.replace("--", "/"))
        if zone is None:
            raise MarkError(f"{value!r}: unknown time zone {tz!r}")
        days = [d for i, d in enumerate(WEEKDAYS) if mask[i] != "-"]
        return _window(value, f"{start[:2]}:{start[2:]}", f"{end[:2]}:{end[2:]}", zone, days)
    m = _AWS_SCHEDULE.match(v)
    if not m:
        raise MarkError(f"{value!r} is not 'HH:MM-HH:MM <time zone> [mon,tue,...]'")
    start, end, tz, days = m.groups()
    return _window(value, start, end, tz, days.split(",") if days else list(WEEKDAYS))


def _window(value: str, start: str, end: str, tz: str, days: list[str]) -> ChangeWindow:
    from pydantic import ValidationError

    try:
        return ChangeWindow(start=start, end=end, timezone=tz, days=days)
    except ValidationError as exc:
        raise MarkError(f"{value!r}: {exc.errors()[0]['msg']}") from None


def normalize_days(value: object) -> list[str]:
    """Days as a list of mon..sun from a list or a text like 'Mon-Fri', 'every day', 'sat,sun', 'fri-mon'
    (how detectors describe a window to people); MarkError for anything else."""
    tokens = value if isinstance(value, list) else str(value).split(",")
    out: list[str] = []
    for token in (str(t).strip().lower() for t in tokens):
        if token in ("every day", "daily", "all", "*"):
            return list(WEEKDAYS)
        first, _, last = token.partition("-")
        if first[:3] not in WEEKDAYS or (last and last[:3] not in WEEKDAYS):
            raise MarkError(f"{token!r} is not a weekday or a range of weekdays (mon..sun)")
        i, j = WEEKDAYS.index(first[:3]), WEEKDAYS.index((last or first)[:3])
        out.extend(WEEKDAYS[(i + k) % 7] for k in range((j - i) % 7 + 1))
    return [d for d in WEEKDAYS if d in out]


def window_hours(window: ChangeWindow) -> float:
    """Length of one occurrence in hours; start == end means the whole day."""
    a = window.start.hour * 60 + window.start.minute
    b = window.end.hour * 60 + window.end.minute
    return ((b - a) % (24 * 60) or 24 * 60) / 60


def off_fraction(window: ChangeWindow) -> Decimal:
    """Share of a week the window covers (wall-clock hours; a DST night is an hour off, no more)."""
    return Decimal(str(window_hours(window) * len(set(window.days)))) / Decimal(168)


def schedule_monthly_savings(hourly_usd: Decimal, window: ChangeWindow) -> Decimal:
    """What stopping for the off window saves a month: run-rate x 730 h x the off share of the week."""
    return hourly_usd * HOURS_PER_MONTH * off_fraction(window)


def in_off_window(window: ChangeWindow, now: datetime) -> bool:
    """The guard's change-window rule, except that start == end is a whole day (00:00-00:00 sat,sun)."""
    from zoneinfo import ZoneInfo

    from costwarden.policies.guard import in_window

    if window.start == window.end:
        local = now.astimezone(ZoneInfo(window.timezone))
        return WEEKDAYS[local.weekday()] in window.days and local.time().replace(tzinfo=None) >= window.start
    return in_window(now, window)


def occurrence_start(window: ChangeWindow, now: datetime) -> datetime | None:
    """When the occurrence of the window that contains `now` began (UTC), or None outside the window.

    Why: the enforcer stops a resource once per occurrence. A stop mark newer than this means it
    already did, and a person has since started the instance again on purpose (a late night's
    work): that start is respected until the next occurrence."""
    from zoneinfo import ZoneInfo

    if not in_off_window(window, now):
        return None
    tz = ZoneInfo(window.timezone)
    local = now.astimezone(tz)
    day = local.date()
    if window.start > window.end and local.time().replace(tzinfo=None) < window.end:
        day -= timedelta(days=1)  # a window across midnight belongs to the day it starts on
    return datetime.combine(day, window.start, tzinfo=tz).astimezone(timezone.utc)

