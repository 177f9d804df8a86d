"""A fake of the Compute Engine v1 REST API, enough for Costwarden's inventory and actions.

Speaks the real wire format to the real google-cloud-compute client (REST transport):
aggregated instance lists with pageToken/nextPageToken, instances get, stop/start/setLabels/
setMachineType answering zone Operations, and zoneOperations get. Operations start RUNNING and
are DONE the first time they are read, and a stopping instance is STOPPING until then, so a
client that trusts the call's answer instead of reading back is caught. Every request is
recorded (method, path), which is how tests prove a dry-run sent no POST.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from costwarden.agent.demo.fakes._http import FakeServer, Reply

API = "https://www.googleapis.com/compute/v1"
BASE = "/compute/v1/projects/"

# Accelerators that A2/A3/G2 machine types carry implicitly (the API lists them in guestAccelerators).
IMPLICIT_GPUS = {
    "a2-highgpu-1g": ("nvidia-tesla-a100", 1), "a2-highgpu-2g": ("nvidia-tesla-a100", 2),
    "a2-highgpu-4g": ("nvidia-tesla-a100", 4), "a2-highgpu-8g": ("nvidia-tesla-a100", 8),
    "a2-megagpu-16g": ("nvidia-tesla-a100", 16), "a2-ultragpu-1g": ("nvidia-a100-80gb", 1),
    "a2-ultragpu-8g": ("nvidia-a100-80gb", 8), "a3-highgpu-8g": ("nvidia-h100-80gb", 8),
    "a3-megagpu-8g": ("nvidia-h100-mega-80gb", 8), "g2-standard-4": ("nvidia-l4", 1),
    "g2-standard-8": ("nvidia-l4", 1), "g2-standard-24": ("nvidia-l4", 2), "g2-standard-48": ("nvidia-l4", 4),
    "g2-standard-96": ("nvidia-l4", 8),
}


def _error(code: int, message: str, reason: str) -> Reply:
    return Reply(code, {"error": {"code": code, "message": message,
                                  "errors": [{"message": message, "domain": "global", "reason": reason}]}})


def _fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:12]


@dataclass
class FakeInstance:
    project: str
    zone: str
    name: str
    machine_type: str
    status: str = "RUNNING"
    labels: dict[str, str] = field(default_factory=dict)
    accelerators: list[tuple[str, int]] | None = None  # None: implied by the machine type
    id: int = 0
    pending_status: str | None = None  # becomes `status` when the operation in flight is read

    def to_json(self) -> dict[str, Any]:
        zone_url = f"{API}/projects/{self.project}/zones/{self.zone}"
        accs = self.accelerators if self.accelerators is not None else (
            [IMPLICIT_GPUS[self.machine_type]] if self.machine_type in IMPLICIT_GPUS else [])
        doc: dict[str, Any] = {
            "kind": "compute#instance", "id": str(self.id), "name": self.name, "zone": zone_url,
            "machineType": f"{zone_url}/machineTypes/{self.machine_type}", "status": self.status,
            "labels": dict(self.labels), "labelFingerprint": _fingerprint(self.labels),
            "creationTimestamp": "2025-05-02T09:14:27.000-07:00",
            "selfLink": f"{zone_url}/instances/{self.name}",
            "scheduling": {"provisioningModel": "STANDARD", "onHostMaintenance": "TERMINATE"},
        }
        if accs:
            doc["guestAccelerators"] = [{"acceleratorType": f"{zone_url}/acceleratorTypes/{t}", "acceleratorCount": n}
                                        for t, n in accs]
        return doc


class FakeGce(FakeServer):
    """Instances by project; `forbidden` projects answer 403 to everything, as a missing IAM grant does."""

    def __init__(self) -> None:
        super().__init__()
        self.instances: dict[tuple[str, str, str], FakeInstance] = {}  # (project, zone, name)
        self.operations: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.forbidden: set[str] = set()
        self._ids = itertools.count(7_100_000_000_000_000_001)
        self._ops = itertools.count(1)

    # -- seeding -------------------------------------------------------------------------------
    def add_instance(self, project: str, zone: str, name: str, machine_type: str, *, status: str = "RUNNING",
                     labels: dict[str, str] | None = None,
                     accelerators: list[tuple[str, int]] | None = None) -> FakeInstance:
        with self.lock:
            inst = FakeInstance(project, zone, name, machine_type, status, dict(labels or {}), accelerators,
                                id=next(self._ids))
            self.instances[(project, zone, name)] = inst
            return inst

    def instance(self, project: str, zone: str, name: str) -> FakeInstance:
        with self.lock:
            return self.instances[(project, zone, name)]

    # -- routing -------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not path.startswith(BASE):
            raise _error(404, f"unknown path {path}", "notFound")
        rest = path[len(BASE):].split("/")
        project = rest[0]
        with self.lock:
            if project in self.forbidden:
                raise _error(403, f"Required 'compute.instances.list' permission for 'projects/{project}'",
                             "forbidden")
            if method == "GET" and rest[1:] == ["aggregated", "instances"]:
                return 200, self._aggregated(project, query)
            m = re.fullmatch(r"zones/([^/]+)/instances/([^/]+)(?:/(\w+))?", "/".join(rest[1:]))
            if m:
                zone, name, verb = m.groups()
                inst = self.instances.get((project, zone, name))
                if inst is None:
                    raise _error(404, f"The resource 'projects/{project}/zones/{zone}/instances/{name}' was not found",
                                 "notFound")
                if method == "GET" and verb is None:
                    return 200, inst.to_json()
                if method == "POST" and verb:
                    return 200, self._mutate(inst, verb, query, body)
            m = re.fullmatch(r"zones/([^/]+)/operations/([^/]+)", "/".join(rest[1:]))
            if m and method == "GET":
                return 200, self._read_operation(project, *m.groups())
        raise _error(404, f"fake GCE does not implement {method} {path}", "notFound")

    def _aggregated(self, project: str, query: dict[str, str]) -> dict[str, Any]:
        rows = sorted((i for i in self.instances.values() if i.project == project), key=lambda i: (i.zone, i.name))
        size = min(int(query.get("maxResults") or 500), 500)
        start = int(query.get("pageToken") or 0)
        page = rows[start:start + size]
        items: dict[str, Any] = {}
        for inst in page:
            items.setdefault(f"zones/{inst.zone}", {"instances": []})["instances"].append(inst.to_json())
        doc: dict[str, Any] = {"kind": "compute#instanceAggregatedList", "id": f"projects/{project}/aggregated/instances",
                               "items": items, "selfLink": f"{API}/projects/{project}/aggregated/instances"}
        if start + size < len(rows):
            doc["nextPageToken"] = str(start + size)
        return doc

    def _mutate(self, inst: FakeInstance, verb: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        if verb == "stop":
            if inst.status == "RUNNING":
                inst.status, inst.pending_status = "STOPPING", "TERMINATED"
        elif verb == "start":
            if inst.status == "TERMINATED":
                inst.status, inst.pending_status = "PROVISIONING", "RUNNING"
        elif verb == "setLabels":
            if body.get("labelFingerprint") != _fingerprint(inst.labels):
                raise _error(412, "Labels fingerprint either invalid or resource labels have changed", "conditionNotMet")
            inst.labels = {str(k): str(v) for k, v in (body.get("labels") or {}).items()}
        elif verb == "setMachineType":
            if inst.status != "TERMINATED":
                raise _error(400, f"Instance '{inst.name}' must be stopped to change its machine type.",
                             "resourceNotReady")
            inst.machine_type = str(body.get("machineType", "")).rsplit("/", 1)[-1]
            inst.accelerators = None if inst.machine_type in IMPLICIT_GPUS else inst.accelerators
        else:
            raise _error(400, f"fake GCE does not implement instances.{verb}", "badRequest")
        name = f"operation-{next(self._ops):06d}-{verb}"
        zone_url = f"{API}/projects/{inst.project}/zones/{inst.zone}"
        op = {"kind": "compute#operation", "id": str(next(self._ids)), "name": name, "zone": zone_url,
              "operationType": verb, "targetLink": f"{zone_url}/instances/{inst.name}",
              "status": "RUNNING", "progress": 0, "selfLink": f"{zone_url}/operations/{name}"}
        self.operations[(inst.project, inst.zone, name)] = op
        op["_instance"] = (inst.project, inst.zone, inst.name)
        return {k: v for k, v in op.items() if not k.startswith("_")}

    def _read_operation(self, project: str, zone: str, name: str) -> dict[str, Any]:
        op = self.operations.get((project, zone, name))
        if op is None:
            raise _error(404, f"The resource 'projects/{project}/zones/{zone}/operations/{name}' was not found",
                         "notFound")
        if op["status"] != "DONE":  # the change lands the first time anyone looks
            op.update(status="DONE", progress=100)
            inst = self.instances.get(op["_instance"])
            if inst is not None and inst.pending_status:
                inst.status, inst.pending_status = inst.pending_status, None
        return {k: v for k, v in op.items() if not k.startswith("_")}
