"""schedule: stop a running resource inside its tagged off window once per occurrence, start only what
Costwarden stopped once the window is over; plus the tag codec and the pure saving math."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from costwarden.policies.actions.marks import (MarkError, decode_schedule, encode_schedule, occurrence_start,
                                    schedule_monthly_savings)
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.schedule import Schedule, ScheduleParams, stopped_by_us
from costwarden.policies.schema import ChangeWindow
from costwarden.state.domain import Observation, Resource

BERLIN_NIGHTS = "23:00-06:00 Europe/Berlin mon,tue,wed,thu,fri"
MON_2330_BERLIN = datetime(2026, 11, 30, 22, 30, tzinfo=timezone.utc)  # CET = UTC+1
TUE_0500_BERLIN = datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc)  # still Monday's occurrence
TUE_1000_BERLIN = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
SAT_0100_BERLIN = datetime(2026, 12, 5, 0, 0, tzinfo=timezone.utc)  # Friday night's occurrence
SUN_2330_BERLIN = datetime(2026, 12, 6, 22, 30, tzinfo=timezone.utc)  # Sunday: no window


def _run(tags: dict[str, str], state: str, now: datetime, *, stopped_at: str = "", provider: str = "aws", **params):
    rt = "gcp.compute" if provider == "gcp" else "aws.ec2"
    r = Resource(provider, "1", "eu-central-1", rt, "i-1", kind="g5.12xlarge", state=state, tags=tags,
                 attrs={"stopped_at": stopped_at})
    d = Schedule(ScheduleParams(**params))
    ctx = DetectContext(policy="p", run_id="r", now=now, price_of=lambda _r: Price(Decimal("5.672"), "test"))
    return (d.detect(Observation(r), ctx) if d.wants(r) else None), ctx


def test_running_inside_the_window_fires_stop_with_the_off_hours_saving():
    for now in (MON_2330_BERLIN, TUE_0500_BERLIN, SAT_0100_BERLIN):
        f, _ = _run({"costwarden:schedule": BERLIN_NIGHTS}, "running", now)
        assert f is not None and f.evidence["op"] == "stop", now
        assert f.evidence["mark_tag"] == "costwarden:stopped-by-schedule"
        assert f.monthly_waste_usd == Decimal("862.62")  # 5.672 x 730 x 35/168


@pytest.mark.parametrize("now", [TUE_1000_BERLIN, SUN_2330_BERLIN])
def test_running_outside_the_window_does_not_fire(now):
    f, ctx = _run({"costwarden:schedule": BERLIN_NIGHTS}, "running", now)
    assert f is None and ctx.warnings == []


def test_a_restart_by_a_person_inside_the_same_occurrence_is_respected():
    ours = {"costwarden:schedule": BERLIN_NIGHTS, "costwarden:stopped-by-schedule": "2026-11-30T22:05:00Z"}
    assert _run(ours, "running", TUE_0500_BERLIN)[0] is None  # stopped at 23:05 Berlin, restarted since
    f, _ = _run(ours, "running", datetime(2026, 12, 1, 22, 30, tzinfo=timezone.utc))  # next night
    assert f is not None and f.evidence["op"] == "stop"


def test_start_only_what_the_schedule_stopped_and_nobody_stopped_again():
    marked = {"costwarden:schedule": BERLIN_NIGHTS, "costwarden:stopped-by-schedule": "2026-11-30T22:05:00Z"}
    f, _ = _run(marked, "stopped", TUE_1000_BERLIN, stopped_at="2026-11-30T22:04:58+00:00")
    assert f is not None and f.evidence["op"] == "start" and f.monthly_waste_usd == Decimal("0.00")
    assert _run(marked, "stopped", TUE_0500_BERLIN)[0] is None  # still inside the window
    # a person stopped it again after our mark: it stays stopped
    assert _run(marked, "stopped", TUE_1000_BERLIN, stopped_at="2026-12-01T08:30:00+00:00")[0] is None
    # stopped with no mark (a person did it): never started
    assert _run({"costwarden:schedule": BERLIN_NIGHTS}, "stopped", TUE_1000_BERLIN)[0] is None
    # `ops` limits the enforcer to one direction
    assert _run(marked, "stopped", TUE_1000_BERLIN, ops=["stop"])[0] is None


def test_gcp_labels_are_read_in_their_encoded_form():
    labels = {"costwarden-schedule": "2300-0600_mtwtf--_europe--berlin"}
    f, _ = _run(labels, "running", MON_2330_BERLIN, provider="gcp")
    assert f is not None and f.evidence["mark_tag"] == "costwarden-stopped-by-schedule"
    marked = {**labels, "costwarden-stopped-by-schedule": "20261130t220500z"}
    f, _ = _run(marked, "terminated", TUE_1000_BERLIN, provider="gcp", stopped_at="2026-11-30T14:04:58.000-08:00")
    assert f is not None and f.evidence["op"] == "start"


def test_a_malformed_schedule_is_a_warning_not_a_finding():
    f, ctx = _run({"costwarden:schedule": "nights please"}, "running", MON_2330_BERLIN)
    assert f is None and "schedule not enforced" in ctx.warnings[0] and "nights please" in ctx.warnings[0]
    f, ctx = _run({"costwarden:schedule": "23:00-06:00 Mars/Olympus"}, "running", MON_2330_BERLIN)
    assert f is None and "unknown time zone" in ctx.warnings[0]


def test_codec_round_trips_both_forms_and_refuses_what_a_label_cannot_hold():
    w = decode_schedule(BERLIN_NIGHTS)
    assert decode_schedule(encode_schedule(w, "gcp")) == w and decode_schedule(encode_schedule(w, "aws")) == w
    every_day = ChangeWindow(start="20:00", end="08:00", timezone="UTC")
    assert encode_schedule(every_day, "aws") == "20:00-08:00 UTC"
    assert encode_schedule(every_day, "gcp") == "2000-0800_mtwtfss_utc"
    with pytest.raises(MarkError, match="cannot be written in a GCP label"):
        encode_schedule(ChangeWindow(start="20:00", end="08:00", timezone="Etc/GMT+5"), "gcp")


def test_saving_math_and_occurrences_are_pure_functions():
    nights = decode_schedule("22:00-06:00 UTC")
    assert schedule_monthly_savings(Decimal("1"), nights) == Decimal("730") / 3
    assert schedule_monthly_savings(Decimal("0"), nights) == 0
    whole_day = ChangeWindow(start="00:00", end="00:00", timezone="UTC", days=["sat", "sun"])
    assert schedule_monthly_savings(Decimal("7"), whole_day) == Decimal("1460")  # 2 of 7 days x 7 x 730
    assert occurrence_start(whole_day, datetime(2026, 12, 5, 13, 0, tzinfo=timezone.utc)) == \
        datetime(2026, 12, 5, 0, 0, tzinfo=timezone.utc)  # a Saturday: off all day
    assert occurrence_start(whole_day, datetime(2026, 12, 7, 13, 0, tzinfo=timezone.utc)) is None  # a Monday
    assert occurrence_start(nights, datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)) == \
        datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)
    assert occurrence_start(nights, datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)) is None
    assert stopped_by_us(None, None) is False
