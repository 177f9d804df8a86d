"""Compute Engine: GPU fleet inventory across projects and zones, and the guarded actions.

Inventory is one paginated aggregated list per project (every zone in one walk), turned into
provider-neutral Resources: resource_type `gcp.compute`, account = project, region = the zone's
region, resource_id = `<zone>/<name>` (unique in a project, and all a tool needs to find the
instance again), kind = machine type, state = status in lower case (`running`, `terminated`) so
detectors compare it as they do for EC2, tags = labels, accelerators in attrs.

Every action is: read the instance, call the API (`*_unary`, since the SDK's own operation poller
ignores a custom endpoint), wait for the zone operation through a ZoneOperationsClient built with
the same options, then read the instance back until it shows the new state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from costwarden.state.domain import Resource
from costwarden.tools import restart_resize as flow
from costwarden.tools.errors import DryRunViolation, ToolError
from costwarden.tools.gcp.session import GcpClients, gcp_error
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool
from costwarden.tools.verify import marks_in_place, read_back

STOPPED = ("stopping", "terminated", "suspended")  # GCE calls a stopped instance TERMINATED
GPU_MACHINE_FAMILIES = ("a2", "a3", "a4", "g2", "g4")  # machine types that come with GPUs attached
STARTED = ("provisioning", "staging", "running")


def mark_stamp(now: datetime | None = None) -> str:
    """The UTC time of a stop as a label value (`20261130t230005z`): labels allow no ':' or uppercase."""
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dt%H%M%Sz")


def _last(url: str) -> str:
    return url.rsplit("/", 1)[-1] if url else ""


def region_of(zone: str) -> str:
    """'us-central1-a' -> 'us-central1'."""
    return zone.rsplit("-", 1)[0] if zone.count("-") >= 2 else zone


def split_id(instance_id: str) -> tuple[str, str]:
    """'us-central1-a/train-1' -> ('us-central1-a', 'train-1'); a bad id is a one-line error."""
    zone, sep, name = instance_id.partition("/")
    if not sep or not zone or not name or "/" in name:
        raise ToolError(f"gcp instance id must be '<zone>/<name>', got {instance_id!r}")
    return zone, name


def _status(inst: Any) -> str:
    status = inst.status
    return (status if isinstance(status, str) else type(inst).Status(status).name).lower()


def to_resource(inst: Any, project: str) -> Resource:
    zone = _last(inst.zone)
    accelerators = [{"type": _last(a.accelerator_type), "count": int(a.accelerator_count)}
                    for a in inst.guest_accelerators]
    return Resource(
        provider="gcp", account=project, region=region_of(zone), resource_type="gcp.compute",
        resource_id=f"{zone}/{inst.name}", kind=_last(inst.machine_type), state=_status(inst),
        tags=dict(inst.labels),
        attrs={"zone": zone, "name": inst.name, "id": str(inst.id), "accelerators": accelerators,
               "gpu_count": sum(a["count"] for a in accelerators),
               "creation_timestamp": inst.creation_timestamp,
               "provisioning_model": inst.scheduling.provisioning_model if inst.scheduling else "",
               "stopped_at": inst.last_stop_timestamp if _status(inst) in STOPPED else ""},
    )


def list_instances(clients: GcpClients, project: str) -> Iterator[Resource]:
    """Every instance of a project, page by page (the pager follows nextPageToken)."""
    from google.cloud import compute_v1

    request = compute_v1.AggregatedListInstancesRequest(project=project, max_results=clients.page_size)
    for _scope, scoped in clients.instances().aggregated_list(request=request, timeout=clients.timeout_s):
        for inst in scoped.instances:
            r = to_resource(inst, project)
            if not clients.regions or r.region in clients.regions:
                yield r


# -- observe -------------------------------------------------------------------------------------

def _get(clients: GcpClients, project: str, zone: str, name: str) -> Any:
    try:
        return clients.instances().get(project=project, zone=zone, instance=name, timeout=clients.timeout_s)
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - API and transport errors become one line
        raise ToolError(f"gcp instances.get {project}/{zone}/{name}: {gcp_error(exc)}") from None


def observe_instance(clients: GcpClients, *, account: str, region: str, instance_id: str,
                     labels: dict[str, str] | None = None, machine_type: str | None = None,
                     keep_prefix: str | None = None, keys: list[str] | None = None,
                     **_: Any) -> dict[str, Any]:
    """The instance's real state; no change. Given an action's `labels`/`keys`/`machine_type` args, it also
    says whether they are in place, so start-up reconciliation can tell whether a crashed action happened."""
    zone, name = split_id(instance_id)
    inst = _get(clients, account, zone, name)
    state: dict[str, Any] = {"instance_id": instance_id, "state": _status(inst),
                             "machine_type": _last(inst.machine_type), "labels": dict(inst.labels),
                             "label_fingerprint": inst.label_fingerprint,
                             "stopped_at": inst.last_stop_timestamp}
    if labels is not None:
        state["labels_applied"] = marks_in_place(state["labels"], labels, keep_prefix)
    if keys is not None:
        state["labels_removed"] = not any(k in state["labels"] for k in keys)
    if machine_type is not None:
        state["machine_type_applied"] = state["machine_type"] == machine_type
    return state


# -- act -----------------------------------------------------------------------------------------

def _wait(clients: GcpClients, project: str, zone: str, op: Any, what: str, timeout_s: float) -> None:
    """Poll the zone operation (GET, never the POST `wait`) until DONE; raise its error in one line."""
    deadline = time.monotonic() + timeout_s
    ops = clients.zone_operations()
    while True:
        status = op.status if isinstance(op.status, str) else type(op).Status(op.status).name
        if status == "DONE":
            break
        if time.monotonic() >= deadline:
            raise ToolError(f"gcp {what}: operation {op.name} still {status} after {timeout_s:g}s")
        time.sleep(0.2)
        op = ops.get(project=project, zone=zone, operation=op.name, timeout=clients.timeout_s)
    errors = list(op.error.errors) if op.error else []
    if errors:
        raise ToolError(f"gcp {what}: {errors[0].code}: {errors[0].message}")


def _call(clients: GcpClients, project: str, zone: str, what: str, fn: Callable[[], Any], timeout_s: float) -> None:
    try:
        op = fn()
        _wait(clients, project, zone, op, what, timeout_s)
    except (ToolError, DryRunViolation):
        raise
    except Exception as exc:  # noqa: BLE001
        raise ToolError(f"gcp {what}: {gcp_error(exc)}") from None


def _run(clients: GcpClients, *, account: str, region: str, instance_id: str, what: str,
         call: Callable[[Any, str, str], Any], done: Callable[[dict[str, Any]], bool],
         skip: Callable[[dict[str, Any]], str | None], timeout_s: float) -> ToolOutcome:
    zone, name = split_id(instance_id)
    before = observe_instance(clients, account=account, region=region, instance_id=instance_id)
    reason = skip(before)
    if reason:
        return ToolOutcome(True, before, reason) if done(before) else ToolOutcome(False, before, reason)
    _call(clients, account, zone, f"{what} {account}/{instance_id}",
          lambda: call(clients.instances(), zone, name), timeout_s)
    after = read_back(lambda: observe_instance(clients, account=account, region=region, instance_id=instance_id),
                      done, timeout_s=timeout_s, poll_s=0.5)
    ok = done(after)
    return ToolOutcome(ok, after, "" if ok else f"instance is {after['state']} after {what}")


def stop_instance(clients: GcpClients, *, account: str, region: str, instance_id: str,
                  mark_tag: str | None = None, unmark_tag: str | None = None,
                  verify_timeout_s: float = 60.0) -> ToolOutcome:
    """Stop; done when the instance reads back STOPPING or TERMINATED. Stopping a stopped one is a no-op.

    With `mark_tag` (a label key), a stop Costwarden made is labelled `<mark_tag>=<UTC time>` once
    verified; with `unmark_tag` that label is removed once stopped (see tools/aws/ec2.stop_instance)."""
    out = _run(clients, account=account, region=region, instance_id=instance_id, what="instances.stop",
               call=lambda c, zone, name: c.stop_unary(project=account, zone=zone, instance=name,
                                                       timeout=clients.timeout_s),
               done=lambda st: st["state"] in STOPPED,
               skip=lambda st: "already stopped; nothing to do" if st["state"] in STOPPED else None,
               timeout_s=verify_timeout_s)
    if out.ok and not out.detail and mark_tag:
        marked = set_labels(clients, account=account, region=region, instance_id=instance_id,
                            labels={mark_tag: mark_stamp()})
        out = ToolOutcome(True, marked.after, "" if marked.ok else f"stopped, but not marked: {marked.detail}")
    if out.ok and unmark_tag and unmark_tag in out.after.get("labels", {}):
        unmarked = remove_labels(clients, account=account, region=region, instance_id=instance_id, keys=[unmark_tag])
        out = ToolOutcome(True, unmarked.after, out.detail if unmarked.ok else f"stopped; {unmarked.detail}")
    return out


def start_instance(clients: GcpClients, *, account: str, region: str, instance_id: str,
                   unmark_tag: str | None = None, verify_timeout_s: float = 120.0) -> ToolOutcome:
    """Start a stopped instance (undo of stop); done when it reads back PROVISIONING/STAGING/RUNNING.
    With `unmark_tag` (a label key), the stop mark is removed once the start is verified."""
    out = _run(clients, account=account, region=region, instance_id=instance_id, what="instances.start",
               call=lambda c, zone, name: c.start_unary(project=account, zone=zone, instance=name,
                                                        timeout=clients.timeout_s),
               done=lambda st: st["state"] in STARTED,
               skip=lambda st: "already running; nothing to do" if st["state"] in STARTED else None,
               timeout_s=verify_timeout_s)
    if out.ok and unmark_tag and unmark_tag in out.after.get("labels", {}):
        unmarked = remove_labels(clients, account=account, region=region, instance_id=instance_id,
                                 keys=[unmark_tag])
        return ToolOutcome(True, unmarked.after, out.detail if unmarked.ok else f"started; {unmarked.detail}")
    return out


def _replace_labels(clients: GcpClients, *, account: str, region: str, instance_id: str, what: str,
                    edit: Callable[[dict[str, str]], dict[str, str]], done: Callable[[dict[str, Any]], bool],
                    nothing: str, timeout_s: float) -> ToolOutcome:
    """setLabels replaces the whole map: read it with its fingerprint, edit, write back. GCE refuses a
    stale fingerprint, so a concurrent edit fails instead of being lost."""
    from google.cloud import compute_v1

    def call(c: Any, zone: str, name: str) -> Any:
        current = observe_instance(clients, account=account, region=region, instance_id=instance_id)
        body = compute_v1.InstancesSetLabelsRequest(labels=edit(current["labels"]),
                                                    label_fingerprint=current["label_fingerprint"])
        return c.set_labels_unary(project=account, zone=zone, instance=name,
                                  instances_set_labels_request_resource=body, timeout=clients.timeout_s)

    return _run(clients, account=account, region=region, instance_id=instance_id, what=what,
                call=call, done=done, skip=lambda st: nothing if done(st) else None, timeout_s=timeout_s)


def set_labels(clients: GcpClients, *, account: str, region: str, instance_id: str, labels: dict[str, str],
               keep_prefix: str | None = None, verify_timeout_s: float = 30.0) -> ToolOutcome:
    """Merge `labels` into the instance's labels (e.g. `costwarden-op=stop_2025-07-01` for a delayed
    action). `keep_prefix` leaves a label that already holds a value with that prefix alone."""
    for k, v in labels.items():  # GCE's own rule; checked here for a one-line error before any call
        if not (k[:1].islower() and len(k) <= 63 and len(str(v)) <= 63
                and all(ch.islower() or ch.isdigit() or ch in "-_" for ch in k)
                and all(ch.islower() or ch.isdigit() or ch in "-_" for ch in str(v))):
            raise ToolError(f"gcp label {k}={v!r}: keys and values are up to 63 lowercase letters, digits, '-' or '_'")
    wanted = {k: str(v) for k, v in labels.items()}
    return _replace_labels(
        clients, account=account, region=region, instance_id=instance_id, what="instances.setLabels",
        edit=lambda cur: {**cur, **{k: v for k, v in wanted.items() if not marks_in_place(cur, {k: v}, keep_prefix)}},
        done=lambda st: marks_in_place(st["labels"], wanted, keep_prefix),
        nothing="labels already set; nothing to do", timeout_s=verify_timeout_s)


def remove_labels(clients: GcpClients, *, account: str, region: str, instance_id: str, keys: list[str],
                  verify_timeout_s: float = 30.0) -> ToolOutcome:
    """Remove labels by key (Cloud Custodian's unmark). Absent keys are a no-op success with no call."""
    if not keys:
        raise ToolError(f"gcp remove labels {instance_id}: no label keys given")
    return _replace_labels(
        clients, account=account, region=region, instance_id=instance_id, what="instances.setLabels",
        edit=lambda cur: {k: v for k, v in cur.items() if k not in keys},
        done=lambda st: not any(k in st["labels"] for k in keys),
        nothing="labels already absent; nothing to do", timeout_s=verify_timeout_s)


def set_machine_type(clients: GcpClients, *, account: str, region: str, instance_id: str, machine_type: str,
                     verify_timeout_s: float = 60.0) -> ToolOutcome:
    """Resize a stopped instance (GCE refuses it on a running one, and so do we, before calling)."""
    from google.cloud import compute_v1

    split_id(instance_id)  # a bad id is a one-line error before anything else

    def skip(st: dict[str, Any]) -> str | None:
        if st["machine_type"] == machine_type:
            return "already that machine type; nothing to do"
        if st["state"] != "terminated":
            return f"instance is {st['state']}; stop it before changing its machine type"
        return None

    def call(c: Any, zone_: str, name: str) -> Any:
        body = compute_v1.InstancesSetMachineTypeRequest(machine_type=f"zones/{zone_}/machineTypes/{machine_type}")
        return c.set_machine_type_unary(project=account, zone=zone_, instance=name,
                                        instances_set_machine_type_request_resource=body, timeout=clients.timeout_s)

    return _run(clients, account=account, region=region, instance_id=instance_id, what="instances.setMachineType",
                call=call, done=lambda st: st["machine_type"] == machine_type, skip=skip,
                timeout_s=verify_timeout_s)


# -- resize with restart -------------------------------------------------------------------------

RESIZE_MARK = "costwarden-stopped-for-resize"  # label value: the machine type before the resize
_PHASES = {"running": flow.RUNNING, "provisioning": flow.STARTING, "staging": flow.STARTING,
           "stopping": flow.STOPPING, "terminated": flow.STOPPED}


def observe_resize(clients: GcpClients, *, account: str, region: str, instance_id: str, machine_type: str,
                   **_: Any) -> dict[str, Any]:
    """observe_instance plus what a resize-with-restart needs: its mark (`resize_mark`, the original
    machine type, or None) and `resized` (the new type is in place and nothing is left to start)."""
    state = observe_instance(clients, account=account, region=region, instance_id=instance_id,
                             machine_type=machine_type)
    state["resize_mark"] = state["labels"].get(RESIZE_MARK)
    state["resized"] = flow.is_resized(state["machine_type"], machine_type, state["resize_mark"])
    return state


class _GceMachine:
    """One Compute Engine instance's calls for tools/restart_resize.py; each waits for its zone operation."""

    mark_key = RESIZE_MARK

    def __init__(self, clients: GcpClients, account: str, region: str, instance_id: str, target: str,
                 timeout_s: float) -> None:
        self.zone, self.vm = split_id(instance_id)
        self.clients, self.account, self.timeout_s = clients, account, timeout_s
        self.where = {"account": account, "region": region, "instance_id": instance_id}
        self.target = target
        self.name = f"gce instance {account}/{instance_id}"

    def look(self) -> flow.Seen:
        raw = observe_resize(self.clients, **self.where, machine_type=self.target)
        return flow.Seen(raw, _PHASES.get(raw["state"], flow.OTHER), raw["state"], raw["machine_type"],
                         raw["resize_mark"])

    def mark(self, original_type: str) -> None:
        out = set_labels(self.clients, **self.where, labels={RESIZE_MARK: original_type})
        if not out.ok:
            raise ToolError(f"{self.name}: resize mark not set: {out.detail}")

    def unmark(self) -> None:
        out = remove_labels(self.clients, **self.where, keys=[RESIZE_MARK])
        if not out.ok:
            raise ToolError(f"{self.name}: resize mark not removed: {out.detail}")

    def _do(self, what: str, fn: Callable[[Any], Any]) -> None:
        _call(self.clients, self.account, self.zone, f"{what} {self.account}/{self.where['instance_id']}",
              lambda: fn(self.clients.instances()), self.timeout_s)

    def stop(self) -> None:
        self._do("instances.stop", lambda c: c.stop_unary(project=self.account, zone=self.zone, instance=self.vm,
                                                          timeout=self.clients.timeout_s))

    def set_type(self, machine_type: str) -> None:
        from google.cloud import compute_v1

        body = compute_v1.InstancesSetMachineTypeRequest(machine_type=f"zones/{self.zone}/machineTypes/{machine_type}")
        self._do("instances.setMachineType", lambda c: c.set_machine_type_unary(
            project=self.account, zone=self.zone, instance=self.vm,
            instances_set_machine_type_request_resource=body, timeout=self.clients.timeout_s))

    def start(self) -> None:
        self._do("instances.start", lambda c: c.start_unary(project=self.account, zone=self.zone, instance=self.vm,
                                                            timeout=self.clients.timeout_s))


def resize_instance(clients: GcpClients, *, account: str, region: str, instance_id: str, machine_type: str,
                    verify_timeout_s: float = 900.0, poll_s: float = 2.0) -> ToolOutcome:
    """Change the machine type of a running or stopped instance: stop it if it runs, setMachineType,
    start it again only if it ran before, verifying each step by reading it back. A label
    (`costwarden-stopped-for-resize=<old type>`) records that the stop was ours until the restart, so a
    rerun after a crash does only what is left; a refused change or start restores the old type and
    starts it again. See tools/aws/ec2.resize_instance and tools/restart_resize.py."""
    if not machine_type:
        raise ToolError(f"gcp resize {instance_id}: no target machine type given")
    machine = _GceMachine(clients, account, region, instance_id, machine_type, verify_timeout_s)
    return flow.resize_with_restart(machine, machine_type, timeout_s=verify_timeout_s, poll_s=poll_s)


register_tool(ToolSpec(name="gcp.compute.stop_instance", provider="gcp", run=stop_instance,
                       observe=observe_instance, is_done=lambda st: st.get("state") in STOPPED))
register_tool(ToolSpec(name="gcp.compute.start_instance", provider="gcp", run=start_instance,
                       observe=observe_instance, is_done=lambda st: st.get("state") in STARTED))
register_tool(ToolSpec(name="gcp.compute.remove_labels", provider="gcp", run=remove_labels, observe=observe_instance,
                       is_done=lambda st: bool(st.get("labels_removed"))))
register_tool(ToolSpec(name="gcp.compute.set_labels", provider="gcp", run=set_labels, observe=observe_instance,
                       is_done=lambda st: bool(st.get("labels_applied"))))
register_tool(ToolSpec(name="gcp.compute.set_machine_type", provider="gcp", run=set_machine_type,
                       observe=observe_instance, is_done=lambda st: bool(st.get("machine_type_applied"))))
register_tool(ToolSpec(name="gcp.compute.resize_instance", provider="gcp", run=resize_instance,
                       observe=observe_resize, is_done=lambda st: bool(st.get("resized")), resume=True))
