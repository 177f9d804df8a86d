"""EBS volumes and snapshots: paginated inventory, and the guarded snapshot-then-delete of a volume.

A volume is deleted only after a snapshot of it has *completed*; the snapshot id is recorded in
the after-state, so the data can be restored with CreateVolume(SnapshotId=...).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from costwarden.state.domain import Resource
from costwarden.tools.aws.retry import error_code
from costwarden.tools.aws.session import AwsClients, scoped
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool

VOLUME = "aws.ebs-volume"
SNAPSHOT = "aws.ebs-snapshot"
SOURCE_TAG = "costwarden:source-volume"


def _tags(raw: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw or []}


def _iso(v: Any) -> str:
    return v.isoformat() if hasattr(v, "isoformat") else str(v or "")


def _call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    return getattr(client, op)(**kwargs)


def _pages(client: Any, op: str, key: str, *, page_size: int, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """The items under `key` of every page of `op` (boto3's paginator)."""
    for page in client.get_paginator(op).paginate(**kwargs, PaginationConfig={"PageSize": page_size}):
        yield from page.get(key, [])


def volume_resource(v: dict[str, Any], account: str, region: str) -> Resource:
    return Resource(
        provider="aws", account=account, region=region, resource_type=VOLUME, resource_id=v["VolumeId"],
        kind=f"ebs:{v.get('VolumeType', 'standard')}", state=v.get("State", ""), tags=_tags(v.get("Tags")),
        attrs={"size_gb": int(v.get("Size", 0)), "create_time": _iso(v.get("CreateTime")),
               "availability_zone": v.get("AvailabilityZone", ""), "iops": v.get("Iops"),
               "attachments": [a.get("InstanceId", "") for a in v.get("Attachments") or []],
               "snapshot_id": v.get("SnapshotId", "")},
    )


def list_volumes(clients: AwsClients, account: str, region: str, *, page_size: int = 500) -> Iterator[Resource]:
    client = clients.client("ec2", region)
    for v in _pages(client, "describe_volumes", "Volumes", page_size=page_size):
        yield volume_resource(v, account, region)


def list_snapshots(clients: AwsClients, account: str, region: str, *, page_size: int = 1000,
                   volume_ids: set[str] | None = None) -> Iterator[Resource]:
    """The account's own snapshots, each marked with whether its source volume still exists and
    which of the account's AMIs use it (those cannot be deleted while the AMI is registered).
    `volume_ids`: the region's volumes when the sweep has listed them already (else described here)."""
    client = clients.client("ec2", region)
    volumes = volume_ids if volume_ids is not None else {
        v["VolumeId"] for v in _pages(client, "describe_volumes", "Volumes", page_size=500)}
    ami_of: dict[str, list[str]] = {}
    for img in _call(client, "describe_images", Owners=["self"]).get("Images", []):
        for bdm in img.get("BlockDeviceMappings") or []:
            sid = (bdm.get("Ebs") or {}).get("SnapshotId")
            if sid:
                ami_of.setdefault(sid, []).append(img["ImageId"])
    for s in _pages(client, "describe_snapshots", "Snapshots", OwnerIds=["self"], page_size=page_size):
        if str(s.get("OwnerId", account)) != str(account):
            continue  # some APIs (and moto) return public snapshots too; only the account's own bill it
        vol = s.get("VolumeId", "")
        yield Resource(
            provider="aws", account=account, region=region, resource_type=SNAPSHOT, resource_id=s["SnapshotId"],
            kind=f"ebs-snapshot:{s.get('StorageTier', 'standard')}", state=s.get("State", ""),
            tags=_tags(s.get("Tags")),
            attrs={"volume_id": vol, "volume_exists": bool(vol) and vol in volumes,
                   "volume_size_gb": int(s.get("VolumeSize", 0)), "start_time": _iso(s.get("StartTime")),
                   "description": s.get("Description", ""), "used_by_amis": ami_of.get(s["SnapshotId"], [])},
        )


def observe_volume(clients: AwsClients, *, account: str, region: str, volume_id: str) -> dict[str, Any]:
    client = scoped(clients, account).client("ec2", region)
    try:
        vols = _call(client, "describe_volumes", VolumeIds=[volume_id]).get("Volumes", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidVolume.NotFound":
            return {"volume_id": volume_id, "state": "deleted"}
        raise ToolError(f"ec2 DescribeVolumes {volume_id} in {region}: {error_code(exc)}") from None
    if not vols:
        return {"volume_id": volume_id, "state": "deleted"}
    v = vols[0]
    return {"volume_id": volume_id, "state": v.get("State", ""), "volume_type": v.get("VolumeType"),
            "size_gb": v.get("Size"), "availability_zone": v.get("AvailabilityZone"),
            "attachments": [a.get("InstanceId", "") for a in v.get("Attachments") or []],
            "tags": _tags(v.get("Tags"))}


def _existing_snapshot(client: Any, volume_id: str) -> dict[str, Any] | None:
    """A completed snapshot this tool already took of the volume (a retry after a crash reuses it)."""
    snaps = _call(client, "describe_snapshots", OwnerIds=["self"],
                  Filters=[{"Name": f"tag:{SOURCE_TAG}", "Values": [volume_id]}]).get("Snapshots", [])
    done = [s for s in snaps if s.get("State") == "completed" and s.get("VolumeId") == volume_id]
    return done[0] if done else None


def snapshot_and_delete(clients: AwsClients, *, account: str, region: str, volume_id: str,
                        snapshot_timeout_s: float = 600.0, poll_s: float = 2.0) -> ToolOutcome:
    """Snapshot the unattached volume, wait for the snapshot to complete, then delete the volume and
    verify it is gone. Never deletes an attached volume or one whose snapshot did not complete."""
    view = scoped(clients, account)
    client = view.client("ec2", region)
    before = observe_volume(view, account=account, region=region, volume_id=volume_id)
    if before["state"] == "deleted":
        return ToolOutcome(True, before, "already deleted; nothing to do")
    if before["state"] != "available" or before.get("attachments"):
        raise ToolError(f"ec2 volume {volume_id} is {before['state']} (attached to "
                        f"{', '.join(before.get('attachments') or []) or 'nothing'}); only unattached volumes are deleted")
    try:
        snap = _existing_snapshot(client, volume_id)
        if snap is None:
            tags = [{"Key": SOURCE_TAG, "Value": volume_id}] + [
                {"Key": k, "Value": v} for k, v in (before.get("tags") or {}).items() if not k.startswith("aws:")]
            snap = _call(client, "create_snapshot", VolumeId=volume_id,
                         Description=f"costwarden: final snapshot of {volume_id} before deletion",
                         TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}])
        sid = snap["SnapshotId"]
        deadline = time.monotonic() + snapshot_timeout_s
        state = snap.get("State", "pending")
        while state != "completed":
            if state == "error":
                raise ToolError(f"ec2 snapshot {sid} of {volume_id} failed; volume not deleted")
            if time.monotonic() >= deadline:
                raise ToolError(f"ec2 snapshot {sid} of {volume_id} still {state} after {snapshot_timeout_s:g}s; "
                                "volume not deleted")
            time.sleep(poll_s)
            state = _call(client, "describe_snapshots", SnapshotIds=[sid])["Snapshots"][0].get("State", "")
        _call(client, "delete_volume", VolumeId=volume_id)
    except ClientError as exc:
        raise ToolError(f"ec2 snapshot-then-delete {volume_id} in {region}: {error_code(exc)}") from None
    after = observe_volume(view, account=account, region=region, volume_id=volume_id)
    after.update({"snapshot_id": sid, "snapshot_state": state})
    ok = after["state"] in ("deleted", "deleting")
    return ToolOutcome(ok, after, "" if ok else f"volume still {after['state']} after DeleteVolume")


register_tool(ToolSpec(
    name=f"{VOLUME}.snapshot_and_delete", provider="aws", run=snapshot_and_delete, observe=observe_volume,
    is_done=lambda state: state.get("state") in ("deleted", "deleting"),
))
