"""s3:// and gs:// FOCUS paths: listed and downloaded with boto3 (moto server) and the GCS JSON API
(a fake on 127.0.0.1), then read by DuckDB from the local cache; no DuckDB extension, no internet."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from tests.fakes.gcs import FakeGcs
from tests.test_focus import row, write_csv
from costwarden.tools.billing.focus import BillingInputError, FocusExport
from costwarden.tools.billing.remote import RemoteObject, aws_clients, select


def _csv(tmp_path: Path, name: str, service: str, cost: str) -> bytes:
    return write_csv(tmp_path / name, [row("2025-01-01", service, cost)]).read_bytes()


@pytest.fixture
def bucket(aws, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws.endpoint)
    s3.create_bucket(Bucket="billing")
    s3.put_object(Bucket="billing", Key="focus/2025-01/part-0.csv", Body=_csv(tmp_path, "a.csv", "Amazon EC2", "2.5"))
    s3.put_object(Bucket="billing", Key="focus/2025-01/part-1.csv", Body=_csv(tmp_path, "b.csv", "Amazon S3", "1.25"))
    s3.put_object(Bucket="billing", Key="focus/2025-01/manifest.json", Body=b"{}")
    s3.put_object(Bucket="billing", Key="other/x.csv", Body=_csv(tmp_path, "c.csv", "Other", "100"))
    return s3


def test_s3_prefix_glob_and_object_through_moto(bucket, aws):
    by_prefix = FocusExport(["s3://billing/focus/"])
    assert len(by_prefix.files) == 2  # the manifest is not data
    assert by_prefix.total() == {"USD": Decimal("3.75")}
    assert FocusExport(["s3://billing/focus/*/part-1.csv"]).total() == {"USD": Decimal("1.25")}
    assert FocusExport(["s3://billing/**.csv"]).total() == {"USD": Decimal("103.75")}
    one = FocusExport(["s3://billing/focus/2025-01/part-0.csv"])
    assert one.files[0].endswith("/s3/billing/focus/2025-01/part-0.csv") and Path(one.files[0]).is_file()
    log = aws_clients().call_log  # the guarded session's own record of what it sent
    assert {"s3.ListObjectsV2", "s3.GetObject"} <= set(log.calls) and log.mutating() == {} and not log.refused


def test_s3_unchanged_object_is_not_downloaded_again_and_a_changed_one_is(bucket, aws, tmp_path):
    log = aws_clients().call_log
    FocusExport(["s3://billing/focus/2025-01/part-0.csv"])
    gets = log.calls["s3.GetObject"]
    FocusExport(["s3://billing/focus/2025-01/part-0.csv"])
    assert log.calls["s3.GetObject"] == gets
    bucket.put_object(Bucket="billing", Key="focus/2025-01/part-0.csv", Body=_csv(tmp_path, "d.csv", "EC2", "9"))
    assert FocusExport(["s3://billing/focus/2025-01/part-0.csv"]).total() == {"USD": Decimal(9)}
    assert log.calls["s3.GetObject"] == gets + 1


def test_s3_missing_bucket_or_object_is_one_line_naming_the_url(bucket):
    with pytest.raises(BillingInputError) as e:
        FocusExport(["s3://no-such-bucket/focus/"])
    assert str(e.value) == "s3://no-such-bucket/focus/: no such bucket 'no-such-bucket'"
    with pytest.raises(BillingInputError) as e:
        FocusExport(["s3://billing/focus/2024-*/*.parquet"])
    assert str(e.value) == "s3://billing/focus/2024-*/*.parquet: no object matches"


@pytest.fixture
def gcs(monkeypatch, tmp_path):
    fake = FakeGcs(page_size=2).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.endpoint)
    fake.put("exports", "focus/2025-01/part-0.csv", _csv(tmp_path, "a.csv", "Compute Engine", "4"))
    fake.put("exports", "focus/2025-01/part-1.csv", _csv(tmp_path, "b.csv", "Cloud Storage", "0.5"))
    fake.put("exports", "focus/2025-01/part-2.csv", _csv(tmp_path, "c.csv", "BigQuery", "0.25"))
    fake.put("exports", "focus/2025-01/metadata.json", b"{}")
    yield fake
    fake.stop()


def test_gs_prefix_and_glob_across_pages(gcs):
    fx = FocusExport(["gs://exports/focus/2025-01"])  # a "directory" without the trailing slash
    assert len(fx.files) == 3 and fx.total() == {"USD": Decimal("4.75")}
    lists = [p for m, p in gcs.requests if p == "/storage/v1/b/exports/o"]
    assert len(lists) >= 2  # four objects, two per page: the pageToken was followed
    assert FocusExport(["gs://exports/focus/*/part-[12].csv"]).total() == {"USD": Decimal("0.75")}
    assert {m for m, _ in gcs.requests} == {"GET"}


def test_gs_missing_bucket_or_object_is_one_line_naming_the_url(gcs):
    with pytest.raises(BillingInputError) as e:
        FocusExport(["gs://nope/focus/"])
    assert str(e.value) == "gs://nope/focus/: no such bucket 'nope'"
    with pytest.raises(BillingInputError) as e:
        FocusExport(["gs://exports/focus/2025-01/missing.csv"])
    assert str(e.value) == "gs://exports/focus/2025-01/missing.csv: no object matches"


def test_select_object_prefix_and_glob_rules():
    objs = [RemoteObject(k, 1, "v") for k in ("a/x.csv", "a/b/y.parquet", "a/m.json", "ab/z.csv", "a")]
    assert [o.key for o in select("a/x.csv", objs)] == ["a/x.csv"]
    assert [o.key for o in select("a", objs)] == ["a"]  # an exact object wins over the prefix
    assert [o.key for o in select("a/", objs)] == ["a/b/y.parquet", "a/x.csv"]  # data files only
    assert [o.key for o in select("a/*.csv", objs)] == ["a/x.csv"]  # * stays within one segment
    assert [o.key for o in select("a/**", objs)] == ["a/b/y.parquet", "a/m.json", "a/x.csv"]
    assert select("c/", objs) == []


def test_gcs_session_refuses_anything_but_reads_before_sending(gcs):
    from costwarden.tools.billing.remote import read_only_gcs_session
    from costwarden.tools.errors import DryRunViolation

    session, base = read_only_gcs_session()
    with pytest.raises(DryRunViolation):
        session.post(f"{base}/storage/v1/b/exports/o", data=b"x")
    with pytest.raises(DryRunViolation):
        session.delete(f"{base}/storage/v1/b/exports/o/focus%2F2025-01%2Fpart-0.csv")
    assert [m for m, _ in gcs.requests] == []  # nothing reached the server
