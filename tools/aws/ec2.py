"""EC2: GPU fleet inventory (paginated) and the guarded stop action."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from state.domain import Resource
from tools.aws.retry import aws_retry, error_code
from tools.aws.session import AwsClients, scoped
from tools.errors import ToolError
from tools.registry import ToolOutcome, ToolSpec, register_tool
from tools.verify import read_back

LIVE_STATES = ["pending", "running", "stopping", "stopped"]


def _tags(raw: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw or []}


def to_resource(inst: dict[str, Any], account: str, region: str) -> Resource:
    return Resource(
        provider="aws", account=account, region=region, resource_type="aws.ec2",
        resource_id=inst["InstanceId"], kind=inst.get("InstanceType", ""),
        state=inst.get("State", {}).get("Name", ""), tags=_tags(inst.get("Tags")),
        attrs={"launch_time": str(inst.get("LaunchTime", "")),
               "availability_zone": inst.get("Placement", {}).get("AvailabilityZone", "")},
    )


@aws_retry
def _page(client: Any, **kwargs: Any) -> dict[str, Any]:
    return client.describe_instances(**kwargs)


def list_instances(clients: AwsClients, account: str, region: str, *, page_size: int = 1000) -> Iterator[Resource]:
    """Yield instances page by page, so memory stays flat in the size of the fleet."""
    client = clients.client("ec2", region)
    kwargs: dict[str, Any] = {"Filters": [{"Name": "instance-state-name", "Values": LIVE_STATES}],
                              "MaxResults": page_size}
    while True:
        page = _page(client, **kwargs)
        for reservation in page.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                yield to_resource(inst, account, region)
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


@aws_retry
def _describe_one(client: Any, instance_id: str) -> dict[str, Any]:
    res = client.describe_instances(InstanceIds=[instance_id])
    for reservation in res.get("Reservations", []):
        for inst in reservation.get("Instances", []):
            return inst
    raise ToolError(f"instance {instance_id} not found")


def observe_instance(clients: AwsClients, *, account: str, region: str, instance_id: str) -> dict[str, Any]:
    clients = scoped(clients, account)
    try:
        inst = _describe_one(clients.client("ec2", region), instance_id)
    except ClientError as exc:
        raise ToolError(f"ec2 DescribeInstances {instance_id} in {region}: {error_code(exc)}") from None
    return {"instance_id": instance_id, "state": inst["State"]["Name"], "instance_type": inst.get("InstanceType"),
            "tags": _tags(inst.get("Tags"))}


@aws_retry
def _stop(client: Any, instance_id: str) -> dict[str, Any]:
    return client.stop_instances(InstanceIds=[instance_id])


def stop_instance(clients: AwsClients, *, account: str, region: str, instance_id: str,
                  verify_timeout_s: float = 30.0) -> ToolOutcome:
    """Stop, then read the instance back. Stopping a stopped instance is a no-op success."""
    clients = scoped(clients, account)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id)
    if before["state"] in ("stopping", "stopped"):
        return ToolOutcome(True, before, "already stopped; nothing to do")
    try:
        _stop(clients.client("ec2", region), instance_id)
    except ClientError as exc:
        raise ToolError(f"ec2 StopInstances {instance_id} in {region}: {error_code(exc)}") from None
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id),
                      lambda st: st["state"] in ("stopping", "stopped"), timeout_s=verify_timeout_s)
    ok = after["state"] in ("stopping", "stopped")
    return ToolOutcome(ok, after, "" if ok else f"instance still {after['state']} after StopInstances")


register_tool(ToolSpec(
    name="aws.ec2.stop_instance", provider="aws", run=stop_instance, observe=observe_instance,
    is_done=lambda state: state.get("state") in ("stopping", "stopped"),
))
