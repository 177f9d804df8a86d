"""EC2: fleet inventory (paginated) and the guarded actions: stop, start, tag, untag, resize (of a
stopped instance, or with a stop and start around it).

Every action reads the instance first (a change already in place is a no-op success, so running
a plan twice makes one mutating call), makes one call, then reads the instance back until it
shows the new state. `observe_instance` takes any action's arguments and says whether that
action's effect is in place, which is how start-up reconciliation settles a crashed action.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from costwarden.state.domain import Resource
from costwarden.tools import restart_resize as flow
from costwarden.tools.aws.retry import error_code
from costwarden.tools.aws.session import AwsClients, scoped
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool
from costwarden.tools.verify import marks_in_place, read_back

LIVE_STATES = ["pending", "running", "stopping", "stopped"]
STOPPED = ("stopping", "stopped")
STARTED = ("pending", "running")
# StateTransitionReason of a stopped instance: "User initiated (2026-11-30 23:00:05 GMT)" (moto: "UTC")
_STOPPED_AT = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


def stopped_at(reason: str | None) -> str:
    """When a stopped instance was stopped, as ISO 8601 UTC, from its StateTransitionReason; '' if unknown.

    Why: the schedule enforcer restarts only what it stopped itself. A stop later than its own
    mark means a person stopped the instance again, and it must stay stopped."""
    m = _STOPPED_AT.search(reason or "")
    return f"{m.group(1).replace(' ', 'T')}+00:00" if m else ""


def mark_stamp(now: datetime | None = None) -> str:
    """The value of the mark a stop leaves (`costwarden:stopped-by-schedule`): the UTC time of the stop."""
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tags(raw: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw or []}


def to_resource(inst: dict[str, Any], account: str, region: str) -> Resource:
    return Resource(
        provider="aws", account=account, region=region, resource_type="aws.ec2",
        resource_id=inst["InstanceId"], kind=inst.get("InstanceType", ""),
        state=inst.get("State", {}).get("Name", ""), tags=_tags(inst.get("Tags")),
        attrs={"launch_time": str(inst.get("LaunchTime", "")),
               "availability_zone": inst.get("Placement", {}).get("AvailabilityZone", ""),
               "stopped_at": stopped_at(inst.get("StateTransitionReason"))
               if inst.get("State", {}).get("Name") in STOPPED else ""},
    )


def list_instances(clients: AwsClients, account: str, region: str, *, page_size: int = 1000) -> Iterator[Resource]:
    """Yield instances page by page (boto3's paginator), so memory stays flat in the size of the fleet."""
    pages = clients.client("ec2", region).get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": LIVE_STATES}], PaginationConfig={"PageSize": page_size})
    for page in pages:
        for reservation in page.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                yield to_resource(inst, account, region)


def _describe_one(client: Any, instance_id: str) -> dict[str, Any]:
    res = client.describe_instances(InstanceIds=[instance_id])
    for reservation in res.get("Reservations", []):
        for inst in reservation.get("Instances", []):
            return inst
    raise ToolError(f"instance {instance_id} not found")


def observe_instance(clients: AwsClients, *, account: str, region: str, instance_id: str,
                     tags: dict[str, str] | None = None, keep_prefix: str | None = None,
                     keys: list[str] | None = None, instance_type: str | None = None,
                     **_: Any) -> dict[str, Any]:
    """The instance's real state; no change. Given an action's `tags`/`keys`/`instance_type` args it
    also says whether they are in place (`tags_applied`, `tags_removed`, `instance_type_applied`)."""
    clients = scoped(clients, account)
    try:
        inst = _describe_one(clients.client("ec2", region), instance_id)
    except ClientError as exc:
        raise ToolError(f"ec2 DescribeInstances {instance_id} in {region}: {error_code(exc)}") from None
    state: dict[str, Any] = {"instance_id": instance_id, "state": inst["State"]["Name"],
                             "instance_type": inst.get("InstanceType"), "tags": _tags(inst.get("Tags")),
                             "stopped_at": stopped_at(inst.get("StateTransitionReason"))}
    if tags is not None:
        state["tags_applied"] = marks_in_place(state["tags"], tags, keep_prefix)
    if keys is not None:
        state["tags_removed"] = not any(k in state["tags"] for k in keys)
    if instance_type is not None:
        state["instance_type_applied"] = state["instance_type"] == instance_type
    return state


def _stop(client: Any, instance_id: str) -> dict[str, Any]:
    return client.stop_instances(InstanceIds=[instance_id])


def stop_instance(clients: AwsClients, *, account: str, region: str, instance_id: str,
                  mark_tag: str | None = None, unmark_tag: str | None = None,
                  verify_timeout_s: float = 30.0) -> ToolOutcome:
    """Stop, then read the instance back. Stopping a stopped instance is a no-op success.

    With `mark_tag`, a stop that Costwarden itself made is tagged `<mark_tag>=<UTC time>` once
    the stop is verified: the schedule enforcer starts only instances carrying that mark. An
    instance found already stopped is not marked (someone else stopped it), and a crash between
    stop and tag leaves it unmarked, so the failure mode is "stays stopped", never "started".
    With `unmark_tag` (a mark-for-op mark that asked for this stop), that tag is removed once the
    instance is stopped, so an overdue mark cannot stop it again after someone restarts it."""
    clients = scoped(clients, account)
    client = clients.client("ec2", region)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id)
    if before["state"] in STOPPED:
        if unmark_tag and unmark_tag in before["tags"]:
            _delete_tags(client, instance_id, [unmark_tag], region)
            before = observe_instance(clients, account=account, region=region, instance_id=instance_id)
        return ToolOutcome(True, before, "already stopped; nothing to do")
    try:
        _stop(client, instance_id)
    except ClientError as exc:
        raise ToolError(f"ec2 StopInstances {instance_id} in {region}: {error_code(exc)}") from None
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id),
                      lambda st: st["state"] in STOPPED, timeout_s=verify_timeout_s)
    ok = after["state"] in STOPPED
    if ok and mark_tag:
        _create_tags(client, instance_id, {mark_tag: mark_stamp()}, region)
    if ok and unmark_tag and unmark_tag in after["tags"]:
        _delete_tags(client, instance_id, [unmark_tag], region)
    if ok and (mark_tag or unmark_tag):
        after = observe_instance(clients, account=account, region=region, instance_id=instance_id)
    return ToolOutcome(ok, after, "" if ok else f"instance still {after['state']} after StopInstances")


def _call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    return getattr(client, op)(**kwargs)


def _create_tags(client: Any, instance_id: str, tags: dict[str, str], region: str) -> None:
    try:
        _call(client, "create_tags", Resources=[instance_id],
              Tags=[{"Key": k, "Value": str(v)} for k, v in tags.items()])
    except ClientError as exc:
        raise ToolError(f"ec2 CreateTags {instance_id} in {region}: {error_code(exc)}") from None


def _delete_tags(client: Any, instance_id: str, keys: list[str], region: str) -> None:
    try:
        _call(client, "delete_tags", Resources=[instance_id], Tags=[{"Key": k} for k in keys])
    except ClientError as exc:
        raise ToolError(f"ec2 DeleteTags {instance_id} in {region}: {error_code(exc)}") from None


def start_instance(clients: AwsClients, *, account: str, region: str, instance_id: str,
                   unmark_tag: str | None = None, verify_timeout_s: float = 60.0) -> ToolOutcome:
    """Start a stopped instance (the undo of stop) and read it back until pending/running.

    With `unmark_tag`, the stop mark is removed once the start is verified, so a later stop by a
    person is never mistaken for one of ours. A running instance is a no-op success."""
    clients = scoped(clients, account)
    client = clients.client("ec2", region)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id)
    if before["state"] in STARTED:
        if unmark_tag and unmark_tag in before["tags"]:
            _delete_tags(client, instance_id, [unmark_tag], region)
            before = observe_instance(clients, account=account, region=region, instance_id=instance_id)
        return ToolOutcome(True, before, "already running; nothing to do")
    if before["state"] != "stopped":
        raise ToolError(f"ec2 instance {instance_id} is {before['state']}; only a stopped instance can be started")
    try:
        _call(client, "start_instances", InstanceIds=[instance_id])
    except ClientError as exc:
        raise ToolError(f"ec2 StartInstances {instance_id} in {region}: {error_code(exc)}") from None
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id),
                      lambda st: st["state"] in STARTED, timeout_s=verify_timeout_s)
    ok = after["state"] in STARTED
    if ok and unmark_tag and unmark_tag in after["tags"]:
        _delete_tags(client, instance_id, [unmark_tag], region)
        after = observe_instance(clients, account=account, region=region, instance_id=instance_id)
    return ToolOutcome(ok, after, "" if ok else f"instance still {after['state']} after StartInstances")


def tag_resource(clients: AwsClients, *, account: str, region: str, instance_id: str, tags: dict[str, str],
                 keep_prefix: str | None = None, verify_timeout_s: float = 15.0) -> ToolOutcome:
    """Set tags on an instance (CreateTags overwrites only the keys given; others are kept).

    `keep_prefix` leaves a key alone when it already holds a value with that prefix (mark-for-op's
    earlier date stands). Nothing to change is a no-op success with no call."""
    if not tags:
        raise ToolError(f"ec2 tag {instance_id}: no tags given")
    for k, v in tags.items():  # EC2's own limits, checked for a one-line error before any call
        if not k or len(k) > 128 or len(str(v)) > 256 or k.lower().startswith("aws:"):
            raise ToolError(f"ec2 tag {k}={v!r}: keys are 1-128 characters, values up to 256, and 'aws:' is reserved")
    clients = scoped(clients, account)
    client = clients.client("ec2", region)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id,
                              tags=tags, keep_prefix=keep_prefix)
    if before["tags_applied"]:
        return ToolOutcome(True, before, "tags already set; nothing to do")
    todo = {k: v for k, v in tags.items() if not marks_in_place(before["tags"], {k: v}, keep_prefix)}
    _create_tags(client, instance_id, todo, region)
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id,
                                               tags=tags, keep_prefix=keep_prefix),
                      lambda st: st["tags_applied"], timeout_s=verify_timeout_s)
    ok = after["tags_applied"]
    return ToolOutcome(ok, after, "" if ok else "tags not in place after CreateTags")


def untag_resource(clients: AwsClients, *, account: str, region: str, instance_id: str, keys: list[str],
                   verify_timeout_s: float = 15.0) -> ToolOutcome:
    """Remove tags by key (Cloud Custodian's unmark/remove-tag). Absent keys are a no-op success."""
    if not keys:
        raise ToolError(f"ec2 untag {instance_id}: no tag keys given")
    clients = scoped(clients, account)
    client = clients.client("ec2", region)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id, keys=keys)
    if before["tags_removed"]:
        return ToolOutcome(True, before, "tags already absent; nothing to do")
    _delete_tags(client, instance_id, [k for k in keys if k in before["tags"]], region)
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id,
                                               keys=keys),
                      lambda st: st["tags_removed"], timeout_s=verify_timeout_s)
    ok = after["tags_removed"]
    return ToolOutcome(ok, after, "" if ok else "tags still present after DeleteTags")


def modify_instance_type(clients: AwsClients, *, account: str, region: str, instance_id: str, instance_type: str,
                         verify_timeout_s: float = 30.0) -> ToolOutcome:
    """Change the type of a STOPPED instance (ModifyInstanceAttribute InstanceType).

    A running instance is refused before any call: EC2 would refuse too, and stopping a
    workload is a decision of its own (a `stop` action, with its own approval)."""
    if not instance_type:
        raise ToolError(f"ec2 resize {instance_id}: no target instance type given")
    clients = scoped(clients, account)
    client = clients.client("ec2", region)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id,
                              instance_type=instance_type)
    if before["instance_type_applied"]:
        return ToolOutcome(True, before, f"already {instance_type}; nothing to do")
    if before["state"] != "stopped":
        raise ToolError(f"ec2 instance {instance_id} is {before['state']}; stop it before changing its type "
                        f"({before['instance_type']} -> {instance_type})")
    try:
        _call(client, "modify_instance_attribute", InstanceId=instance_id, InstanceType={"Value": instance_type})
    except ClientError as exc:
        raise ToolError(f"ec2 ModifyInstanceAttribute {instance_id} in {region}: {error_code(exc)}") from None
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id,
                                               instance_type=instance_type),
                      lambda st: st["instance_type_applied"], timeout_s=verify_timeout_s)
    ok = after["instance_type_applied"]
    return ToolOutcome(ok, after, "" if ok else f"instance is still {after['instance_type']} after the change")


# -- resize with restart -------------------------------------------------------------------------

RESIZE_MARK = "costwarden:stopped-for-resize"  # value: the type the instance had before the resize
_PHASES = {"running": flow.RUNNING, "pending": flow.STARTING, "stopping": flow.STOPPING, "stopped": flow.STOPPED}


def observe_resize(clients: AwsClients, *, account: str, region: str, instance_id: str, instance_type: str,
                   **_: Any) -> dict[str, Any]:
    """observe_instance plus what a resize-with-restart needs: its mark (`resize_mark`, the original
    type, or None) and `resized` (the new type is in place and nothing is left to start)."""
    state = observe_instance(clients, account=account, region=region, instance_id=instance_id,
                             instance_type=instance_type)
    state["resize_mark"] = state["tags"].get(RESIZE_MARK)
    state["resized"] = flow.is_resized(state["instance_type"] or "", instance_type, state["resize_mark"])
    return state


class _Ec2Machine:
    """One EC2 instance's calls for tools/restart_resize.py; each ClientError becomes one ToolError line."""

    mark_key = RESIZE_MARK

    def __init__(self, clients: AwsClients, account: str, region: str, instance_id: str, target: str) -> None:
        self.clients = scoped(clients, account)
        self.client = self.clients.client("ec2", region)
        self.where = {"account": account, "region": region, "instance_id": instance_id}
        self.target = target
        self.name = f"ec2 instance {instance_id} in {region}"

    def look(self) -> flow.Seen:
        raw = observe_resize(self.clients, **self.where, instance_type=self.target)
        return flow.Seen(raw, _PHASES.get(raw["state"], flow.OTHER), raw["state"], raw["instance_type"] or "",
                         raw["resize_mark"])

    def mark(self, original_type: str) -> None:
        _create_tags(self.client, self.where["instance_id"], {RESIZE_MARK: original_type}, self.where["region"])

    def unmark(self) -> None:
        _delete_tags(self.client, self.where["instance_id"], [RESIZE_MARK], self.where["region"])

    def _do(self, op: str, label: str, **kwargs: Any) -> None:
        try:
            _call(self.client, op, **kwargs)
        except ClientError as exc:
            raise ToolError(f"ec2 {label} {self.where['instance_id']} in {self.where['region']}: "
                            f"{error_code(exc)}") from None

    def stop(self) -> None:
        self._do("stop_instances", "StopInstances", InstanceIds=[self.where["instance_id"]])

    def set_type(self, instance_type: str) -> None:
        self._do("modify_instance_attribute", "ModifyInstanceAttribute", InstanceId=self.where["instance_id"],
                 InstanceType={"Value": instance_type})

    def start(self) -> None:
        self._do("start_instances", "StartInstances", InstanceIds=[self.where["instance_id"]])


def resize_instance(clients: AwsClients, *, account: str, region: str, instance_id: str, instance_type: str,
                    verify_timeout_s: float = 900.0, poll_s: float = 2.0) -> ToolOutcome:
    """Change the type of a running or stopped instance: stop it if it runs, change the type, start
    it again only if it ran before, verifying each step by reading the instance back.

    Why one tool rather than stop + modify + start actions: one approval covers the downtime, and
    the `costwarden:stopped-for-resize` mark lets a rerun (or start-up reconciliation after a
    crash) tell from the instance itself what is left, so it never stays stopped by our hand.
    A refused change or start restores the original type and starts it again (tools/restart_resize.py)."""
    if not instance_type:
        raise ToolError(f"ec2 resize {instance_id}: no target instance type given")
    machine = _Ec2Machine(clients, account, region, instance_id, instance_type)
    return flow.resize_with_restart(machine, instance_type, timeout_s=verify_timeout_s, poll_s=poll_s)


register_tool(ToolSpec(
    name="aws.ec2.stop_instance", provider="aws", run=stop_instance, observe=observe_instance,
    is_done=lambda state: state.get("state") in STOPPED,
))
register_tool(ToolSpec(name="aws.ec2.start_instance", provider="aws", run=start_instance, observe=observe_instance,
                       is_done=lambda state: state.get("state") in STARTED))
register_tool(ToolSpec(name="aws.ec2.tag_resource", provider="aws", run=tag_resource, observe=observe_instance,
                       is_done=lambda state: bool(state.get("tags_applied"))))
register_tool(ToolSpec(name="aws.ec2.untag_resource", provider="aws", run=untag_resource, observe=observe_instance,
                       is_done=lambda state: bool(state.get("tags_removed"))))
register_tool(ToolSpec(name="aws.ec2.modify_instance_type", provider="aws", run=modify_instance_type,
                       observe=observe_instance, is_done=lambda state: bool(state.get("instance_type_applied"))))
register_tool(ToolSpec(name="aws.ec2.resize_instance", provider="aws", run=resize_instance, observe=observe_resize,
                       is_done=lambda state: bool(state.get("resized")), resume=True))
