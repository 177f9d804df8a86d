"""Elastic IPs: inventory and the guarded release of an unassociated address."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from costwarden.state.domain import Resource
from costwarden.tools.aws.retry import error_code
from costwarden.tools.aws.session import AwsClients, scoped
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool

RESOURCE_TYPE = "aws.elastic-ip"


def _call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    return getattr(client, op)(**kwargs)


def to_resource(a: dict[str, Any], account: str, region: str) -> Resource:
    associated = bool(a.get("AssociationId") or a.get("InstanceId") or a.get("NetworkInterfaceId"))
    return Resource(
        provider="aws", account=account, region=region, resource_type=RESOURCE_TYPE,
        resource_id=a.get("AllocationId") or a.get("PublicIp", ""), kind="eip",
        state="associated" if associated else "unassociated",
        tags={t["Key"]: t.get("Value", "") for t in a.get("Tags") or []},
        attrs={"public_ip": a.get("PublicIp", ""), "association_id": a.get("AssociationId", ""),
               "instance_id": a.get("InstanceId", ""), "network_interface_id": a.get("NetworkInterfaceId", ""),
               "domain": a.get("Domain", "")},
    )


def list_addresses(clients: AwsClients, account: str, region: str) -> Iterator[Resource]:
    """DescribeAddresses is not paginated (accounts hold at most a few hundred addresses)."""
    for a in _call(clients.client("ec2", region), "describe_addresses").get("Addresses", []):
        yield to_resource(a, account, region)


def observe_address(clients: AwsClients, *, account: str, region: str, allocation_id: str) -> dict[str, Any]:
    client = scoped(clients, account).client("ec2", region)
    try:
        found = _call(client, "describe_addresses", AllocationIds=[allocation_id]).get("Addresses", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidAllocationID.NotFound":
            return {"allocation_id": allocation_id, "state": "released"}
        raise ToolError(f"ec2 DescribeAddresses {allocation_id} in {region}: {error_code(exc)}") from None
    if not found:
        return {"allocation_id": allocation_id, "state": "released"}
    r = to_resource(found[0], account, region)
    return {"allocation_id": allocation_id, "state": r.state, "public_ip": r.attrs["public_ip"],
            "association_id": r.attrs["association_id"], "instance_id": r.attrs["instance_id"], "tags": r.tags}


def release_address(clients: AwsClients, *, account: str, region: str, allocation_id: str) -> ToolOutcome:
    """Release the address if it is still unassociated; verify it is gone. The public IP cannot be
    got back afterwards, which is why the policy action is destructive (approval required)."""
    view = scoped(clients, account)
    before = observe_address(view, account=account, region=region, allocation_id=allocation_id)
    if before["state"] == "released":
        return ToolOutcome(True, before, "already released; nothing to do")
    if before["state"] != "unassociated":
        raise ToolError(f"ec2 address {allocation_id} ({before.get('public_ip')}) is associated again "
                        f"(with {before.get('instance_id') or before.get('association_id')}); not released")
    try:
        _call(view.client("ec2", region), "release_address", AllocationId=allocation_id)
    except ClientError as exc:
        raise ToolError(f"ec2 ReleaseAddress {allocation_id} in {region}: {error_code(exc)}") from None
    after = observe_address(view, account=account, region=region, allocation_id=allocation_id)
    after["public_ip"] = before.get("public_ip")
    ok = after["state"] == "released"
    return ToolOutcome(ok, after, "" if ok else f"address still {after['state']} after ReleaseAddress")


register_tool(ToolSpec(
    name=f"{RESOURCE_TYPE}.release_address", provider="aws", run=release_address, observe=observe_address,
    is_done=lambda state: state.get("state") == "released",
))
