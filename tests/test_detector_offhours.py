"""off-hours-idle: the profile and window math on hand-made series, then a dry-run sweep against moto."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import boto3
import pytest
from botocore.config import Config
from pydantic import ValidationError

from costwarden.agent.config import AwsSettings, Settings
from costwarden.agent.demo.estate import DEMO_AMI
from costwarden.agent.engine.sweep import run_sweep
from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.offhours_idle import (CLASSES, OffHoursIdle, OffHoursIdleParams, Window, best_schedule,
                                              find_window, local_profile)
from costwarden.policies.errors import PolicyError
from costwarden.policies.loader import load_policy_file
from costwarden.state.domain import Observation, Resource, Series
from tests.fakes.moto_server import mutating

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")
MONDAY = datetime(2026, 11, 9, tzinfo=timezone.utc)  # a Monday, far from any DST change


def hourly(start: datetime, hours: int, tz: ZoneInfo, busy: Callable[[datetime], bool],
           busy_value: float = 60.0, idle_value: float = 1.0) -> list[tuple[float, float]]:
    """One datapoint per UTC hour; its value depends on the local wall-clock time."""
    out = []
    for h in range(hours):
        t = start + timedelta(hours=h)
        out.append((t.timestamp(), busy_value if busy(t.astimezone(tz)) else idle_value))
    return out


def nights_off(lt: datetime) -> bool:
    """Busy except 23:00-06:00 local."""
    return 6 <= lt.hour < 23


def find(points, tz, days=CLASSES["daily"][0], **kw) -> Window | None:
    args = dict(min_hours=4, max_hours=CLASSES["daily"][1], min_day_fraction=0.8, min_coverage=0.8) | kw
    return find_window(local_profile(points, tz), 5.0, days, **args)


def resource(kind="g5.xlarge", rtype="aws.ec2", provider="aws", tags=None) -> Resource:
    return Resource(provider, "111122223333", "us-east-1", rtype, "i-0dev", kind=kind, state="running",
                    tags=tags or {})


def ctx(price: Decimal | None = Decimal("1.006")) -> DetectContext:
    return DetectContext("p", "run_1", MONDAY, lambda r: Price(price, "test table" if price else "unpriced"))


def detect(points, signal="gpu_utilization", r=None, c=None, **params):
    return OffHoursIdle(OffHoursIdleParams(**params)).detect(
        Observation(r or resource(), {signal: Series(signal, points)}), c or ctx())


# -- pure functions ---------------------------------------------------------------------------------

def test_a_window_that_wraps_midnight_is_found_in_local_time():
    w = find(hourly(MONDAY, 14 * 24, BERLIN, nights_off), BERLIN)
    assert (w.start_hour, w.hours) == (23, 7)
    assert w.held == w.judged >= 13
    assert sorted(w.week_slots())[:3] == [0, 1, 2]  # Sunday 23:00's window runs into Monday 00:00-05:00
    assert len(w.week_slots()) == 49


def test_the_same_series_read_in_another_timezone_moves_the_window():
    points = hourly(MONDAY, 14 * 24, BERLIN, nights_off)
    w = find(points, ZoneInfo("UTC"))
    assert (w.start_hour, w.hours) == (22, 7)  # Berlin is UTC+1 in November


def test_dst_change_does_not_move_or_break_a_wall_clock_window():
    # Europe/Berlin leaves DST on 2026-10-25: in UTC the idle night shifts by an hour that day
    start = datetime(2026, 10, 15, tzinfo=timezone.utc)
    points = hourly(start, 21 * 24, BERLIN, nights_off)
    w = find(points, BERLIN, min_day_fraction=1.0)
    assert (w.start_hour, w.hours) == (23, 7) and w.held == w.judged >= 19
    # read in UTC the night is 21:00-04:00 before the change and 22:00-05:00 after: only 6 hours recur daily
    u = find(points, ZoneInfo("UTC"), min_day_fraction=1.0)
    assert (u.start_hour, u.hours) == (22, 6)


def test_the_repeated_hour_keeps_the_busier_value_and_the_skipped_hour_is_missing():
    # 2026-10-25 02:00-03:00 happens twice in Berlin (00:00 and 01:00 UTC)
    fall = [(datetime(2026, 10, 25, 0, tzinfo=timezone.utc).timestamp(), 1.0),
            (datetime(2026, 10, 25, 1, tzinfo=timezone.utc).timestamp(), 80.0)]
    p = local_profile(fall, BERLIN)
    assert p.values[2] == 80.0 and p.values.count(None) == 23
    # 2026-03-29 02:00 does not exist in Berlin: 00:00 and 01:00 UTC are 01:00 and 03:00 local
    spring = [(datetime(2026, 3, 29, 0, tzinfo=timezone.utc).timestamp(), 1.0),
              (datetime(2026, 3, 29, 1, tzinfo=timezone.utc).timestamp(), 2.0)]
    q = local_profile(spring, BERLIN)
    assert (q.values[1], q.values[2], q.values[3]) == (1.0, None, 2.0)


def test_one_late_night_does_not_sink_the_window_but_a_strict_fraction_does():
    late = MONDAY + timedelta(days=5)

    def busy(lt: datetime) -> bool:  # one night someone worked until 02:00
        return nights_off(lt) or (lt.date() == late.date() + timedelta(days=1) and lt.hour < 2)

    points = hourly(MONDAY, 14 * 24, ZoneInfo("UTC"), busy)
    w = find(points, ZoneInfo("UTC"))
    assert (w.start_hour, w.hours) == (23, 7) and w.held == w.judged - 1
    strict = find(points, ZoneInfo("UTC"), min_day_fraction=1.0)
    assert (strict.start_hour, strict.hours) == (2, 4)  # only 02:00-06:00 held every single night


def test_weekend_only_idle_is_a_schedule_of_its_own():
    def busy(lt: datetime) -> bool:
        return lt.weekday() < 5  # busy all weekday long, idle all weekend

    points = hourly(MONDAY, 21 * 24, ZoneInfo("UTC"), busy)
    profile = local_profile(points, ZoneInfo("UTC"))
    windows = {name: w for name, (days, longest) in CLASSES.items()
               if (w := find_window(profile, 5.0, days, min_hours=4, max_hours=longest, min_day_fraction=0.8,
                                    min_coverage=0.8)) is not None}
    assert set(windows) == {"weekend"}  # no window holds on weekdays, and so none every day
    chosen, hours = best_schedule(windows)
    assert [(w.start_hour, w.hours) for w in chosen] == [(0, 24)] and hours == 48


def test_nights_plus_weekends_combine_without_counting_an_hour_twice():
    def busy(lt: datetime) -> bool:
        return lt.weekday() < 5 and 8 <= lt.hour < 20

    points = hourly(MONDAY, 21 * 24, ZoneInfo("UTC"), busy)
    f = detect(points, timezone="UTC")
    rules = f.evidence["schedule"]["rules"]
    assert [r["days"] for r in rules] == ["Mon-Fri", "Sat-Sun"]
    assert (rules[0]["stop_at"], rules[0]["start_at"]) == ("20:00", "08:00")
    assert f.evidence["hours_per_week"] == 168 - 5 * 12  # every hour outside office hours, once


# -- the detector -----------------------------------------------------------------------------------

def test_fires_with_schedule_and_saving_formula():
    f = detect(hourly(MONDAY, 14 * 24, BERLIN, nights_off), timezone="Europe/Berlin")
    assert f is not None and f.detector == "off-hours-idle" and f.confidence == "high"
    assert f.evidence["schedule"] == {"timezone": "Europe/Berlin", "rules": [
        {"days": "every day", "stop_at": "23:00", "start_at": "06:00", "start_days_later": 1, "hours": 7,
         "held_days": 13, "judged_days": 13}]}
    assert f.evidence["hours_per_week"] == 49
    assert (f.evidence["window_start"], f.evidence["window_end"], f.evidence["days"], f.evidence["timezone"]) == (
        "23:00", "06:00", "every day", "Europe/Berlin")
    assert f.monthly_waste_usd == Decimal("213.61")  # 49 x 1.006 x 52 / 12 = 213.608...
    assert f.evidence["saving_formula"] == "hours_per_week x hourly_price_usd x 52 / 12"
    assert "23:00-06:00 the next day" in f.evidence["summary"]
    assert f.evidence["util_by_local_hour_pct"][2] == 1.0 and f.evidence["util_by_local_hour_pct"][12] == 60.0


def test_does_not_fire_when_always_busy_always_idle_or_the_window_is_short():
    assert detect(hourly(MONDAY, 14 * 24, BERLIN, lambda lt: True)) is None
    assert detect(hourly(MONDAY, 14 * 24, BERLIN, lambda lt: False)) is None  # idle-gpu's finding
    short = hourly(MONDAY, 14 * 24, ZoneInfo("UTC"), lambda lt: not (2 <= lt.hour < 5))  # 3 idle hours
    assert detect(short, timezone="UTC") is None
    assert detect(short, timezone="UTC", min_window_hours=3) is not None
    too_few = hourly(MONDAY, 5 * 24, BERLIN, nights_off)  # 5 of 14 days: not enough datapoints
    assert detect(too_few, timezone="Europe/Berlin") is None


def test_cpu_stands_in_with_medium_confidence_and_k8s_nodes_work_too():
    points = hourly(MONDAY, 14 * 24, ZoneInfo("UTC"), nights_off)
    f = detect(points, signal="cpu_utilization", r=resource("m5.xlarge"), timezone="UTC")
    assert f.confidence == "medium" and f.evidence["signal"] == "cpu_utilization_profile"
    node = resource("8x NVIDIA A100-SXM4-80GB", rtype="k8s.gpu-node", provider="k8s")
    assert OffHoursIdle(OffHoursIdleParams(timezone="UTC")).wants(node)
    c = ctx(price=None)
    g = detect(points, r=node, c=c, timezone="UTC")
    assert g is not None and g.monthly_waste_usd == 0 and g.evidence["price_source"] == "unpriced"
    assert c.warnings and "unpriced" in c.warnings[0]


def test_a_timezone_tag_overrides_the_param_and_a_bad_one_warns():
    points = hourly(MONDAY, 14 * 24, NY, nights_off)
    f = detect(points, r=resource(tags={"costwarden:timezone": "America/New_York"}), timezone="UTC")
    assert f.evidence["schedule"]["timezone"] == "America/New_York"
    assert f.evidence["schedule"]["rules"][0]["stop_at"] == "23:00"
    c = ctx()
    g = detect(points, r=resource(tags={"costwarden:timezone": "Mars/Olympus"}), c=c, timezone="UTC")
    assert g.evidence["schedule"]["timezone"] == "UTC" and "Mars/Olympus" in c.warnings[0]


def test_a_bad_timezone_in_a_policy_is_a_one_line_error_naming_the_field(tmp_path):
    with pytest.raises(ValidationError, match="unknown IANA timezone"):
        OffHoursIdleParams(timezone="Europe/Atlantis")
    f = tmp_path / "p.yml"
    f.write_text("policies:\n  - name: nights\n    resource: aws.ec2\n    filters:\n"
                 "      - type: off-hours-idle\n        timezone: Europe/Atlantis\n")
    with pytest.raises(PolicyError) as exc:
        load_policy_file(f)
    msg = str(exc.value)
    assert "\n" not in msg and "p.yml" in msg and "timezone" in msg and "Europe/Atlantis" in msg


# -- through a real sweep against moto --------------------------------------------------------------

POLICY = """
policies:
  - name: off-hours
    resource: aws.ec2
    mode: report
    filters:
      - type: off-hours-idle
        lookback_days: 3
        timezone: America/New_York
"""


def test_dry_run_sweep_proposes_a_schedule_for_the_nightly_idle_box_only(aws, state_dir, tmp_path,
                                                                        no_costwarden_env):
    cfg = Config(disable_request_compression=True)  # moto's server cannot read gzip PutMetricData bodies
    ec2 = boto3.client("ec2", region_name="us-east-1")
    cw = boto3.client("cloudwatch", region_name="us-east-1", config=cfg)
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    estate = {"dev-box": ("g5.xlarge", "CWAgent", "nvidia_smi_utilization_gpu", nights_off),
              "batch-busy": ("g5.xlarge", "CWAgent", "nvidia_smi_utilization_gpu", lambda lt: True),
              "forgotten": ("g5.xlarge", "CWAgent", "nvidia_smi_utilization_gpu", lambda lt: False),
              "web-nightly": ("m5.xlarge", "AWS/EC2", "CPUUtilization", nights_off)}
    ids = {}
    for name, (kind, namespace, metric, busy) in estate.items():
        iid = ec2.run_instances(ImageId=DEMO_AMI, InstanceType=kind, MinCount=1, MaxCount=1, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])["Instances"][0]["InstanceId"]
        ids[name] = iid
        points = hourly(now - timedelta(hours=72), 72, NY, busy)  # short history: moto's GetMetricData is O(n)
        cw.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": metric, "Dimensions": [{"Name": "InstanceId", "Value": iid}],
             "Timestamp": datetime.fromtimestamp(ts, timezone.utc), "Value": v, "Unit": "Percent"}
            for ts, v in points])
    aws.clear_calls()
    f = tmp_path / "offhours.yml"
    f.write_text(POLICY)
    result = run_sweep(Settings(state_dir=state_dir, aws=AwsSettings(regions=["us-east-1"])),
                       load_policy_file(f), dry_run=True)

    assert result.errors == []
    by_id = {x.resource_id: x for x in result.findings}
    assert set(by_id) == {ids["dev-box"], ids["web-nightly"]}  # not the busy one, not the always-idle one
    dev = by_id[ids["dev-box"]]
    rule = dev.evidence["schedule"]["rules"][0]
    assert dev.evidence["schedule"]["timezone"] == "America/New_York"
    assert (rule["stop_at"], rule["start_at"]) == ("23:00", "06:00") and dev.confidence == "high"
    assert by_id[ids["web-nightly"]].confidence == "medium"  # CPU only
    assert dev.evidence["hours_per_week"] == 49 and dev.monthly_waste_usd == Decimal("213.61")  # 49 x 1.006 x 52/12
    assert "idle every day 23:00-06:00" in dev.rationale
    assert result.actions == []  # report-only until a schedule action exists
    assert mutating(aws.calls) == [] and aws.calls.count("GetMetricData") == 1
