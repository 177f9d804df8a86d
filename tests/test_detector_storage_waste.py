"""unattached-volume, orphaned-snapshot and unassociated-eip on hand-made resources."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from costwarden.policies.detectors.base import DetectContext, Price
from costwarden.policies.detectors.orphaned_snapshot import OrphanedSnapshot, OrphanedSnapshotParams
from costwarden.policies.detectors.unassociated_eip import UnassociatedEip
from costwarden.policies.detectors.unattached_volume import UnattachedVolume, UnattachedVolumeParams
from costwarden.policies.detectors.base import DetectorParams
from costwarden.state.domain import Observation, Resource
from costwarden.tools.pricing import PriceBook

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)
BOOK = PriceBook()


def ctx() -> DetectContext:
    def price_of(r: Resource) -> Price:
        return Price(*BOOK.hourly(r.provider, r.region, r.kind))

    return DetectContext("p", "run_1", NOW, price_of)


def volume(state: str = "available", size: int = 500, kind: str = "ebs:gp3", age_days: int = 30) -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.ebs-volume", "vol-1", kind=kind, state=state,
                    attrs={"size_gb": size, "create_time": (NOW - timedelta(days=age_days)).isoformat(),
                           "attachments": [] if state == "available" else ["i-1"]})


def snapshot(*, volume_exists: bool = False, age_days: int = 90, amis: list[str] | None = None) -> Resource:
    return Resource("aws", "111122223333", "us-east-1", "aws.ebs-snapshot", "snap-1", kind="ebs-snapshot:standard",
                    state="completed",
                    attrs={"volume_id": "vol-gone", "volume_exists": volume_exists, "volume_size_gb": 200,
                           "start_time": (NOW - timedelta(days=age_days)).isoformat(), "used_by_amis": amis or []})


def test_unattached_volume_fires_at_its_gb_month_price():
    d = UnattachedVolume(UnattachedVolumeParams())
    r = volume()
    assert d.wants(r)
    f = d.detect(Observation(r), ctx())
    assert f is not None
    assert f.monthly_waste_usd == Decimal("40.00")  # 500 GB x $0.08
    assert f.evidence["price_per_gb_month_usd"] == 0.08
    assert f.evidence["snapshot_monthly_usd_upper_bound"] == 25.0  # 500 GB x $0.05
    gp2 = d.detect(Observation(volume(kind="ebs:gp2", size=1000)), ctx())
    assert gp2 is not None and gp2.monthly_waste_usd == Decimal("100.00")


def test_attached_or_young_volume_does_not_fire():
    d = UnattachedVolume(UnattachedVolumeParams())
    assert not d.wants(volume(state="in-use"))
    assert d.detect(Observation(volume(age_days=2)), ctx()) is None


def test_orphaned_snapshot_fires_with_an_upper_bound():
    d = OrphanedSnapshot(OrphanedSnapshotParams(min_age_days=30))
    r = snapshot()
    assert d.wants(r)
    f = d.detect(Observation(r), ctx())
    assert f is not None and f.monthly_waste_usd == Decimal("10.00")  # 200 GB x $0.05
    assert f.confidence == "medium" and f.evidence["waste_is_upper_bound"] is True
    assert f.evidence["age_days"] == 90


def test_snapshot_with_its_volume_young_or_behind_an_ami_does_not_fire():
    d = OrphanedSnapshot(OrphanedSnapshotParams(min_age_days=30))
    assert not d.wants(snapshot(volume_exists=True))
    assert not d.wants(snapshot(amis=["ami-1"]))
    assert d.detect(Observation(snapshot(age_days=5)), ctx()) is None


def test_unassociated_eip_fires_and_associated_does_not():
    d = UnassociatedEip(DetectorParams())
    free = Resource("aws", "1", "us-east-1", "aws.elastic-ip", "eipalloc-1", kind="eip", state="unassociated",
                    attrs={"public_ip": "203.0.113.9"})
    f = d.detect(Observation(free), ctx())
    assert d.wants(free) and f is not None and f.monthly_waste_usd == Decimal("3.65")  # $0.005 x 730
    assert not d.wants(Resource("aws", "1", "us-east-1", "aws.elastic-ip", "eipalloc-2", kind="eip",
                                state="associated"))


def test_price_overrides_use_the_data_files_units():
    book = PriceBook({"ebs:gp3": 0.05, "eu-west-1/ml.g5.xlarge": 2.0})
    hourly, source = book.hourly("aws", "us-east-1", "ebs:gp3")
    assert source == "config override" and round(hourly * 730, 6) == Decimal("0.05")
    assert book.hourly("aws", "eu-west-1", "ml.g5.xlarge") == (Decimal("2.0"), "config override")
    hourly, source = book.hourly("aws", "eu-west-1", "ml.g4dn.xlarge")
    assert hourly == Decimal("0.736") and "SageMaker" in source and "us-east-1 figure" in source
    assert book.hourly("aws", "us-east-1", "ml.nope")[0] is None
