"""A lean EC2 DescribeInstances on 127.0.0.1, for estates too large for moto.

Two things measured here made moto unfit for a 5,000-instance benchmark: its XML serializer
costs ~5 ms per instance (a 2,500-instance DescribeInstances took 13-40 s depending on load,
and RunInstances pays the same to seed), and it pages DescribeInstances by reservation, so a
fleet launched in a few large RunInstances calls comes back as ONE page whatever MaxResults
says, and the client's pagination is never exercised. This fake pages by instance, as EC2
does (MaxResults 5..1000), answers in EC2's query/XML protocol to real boto3 (reached through
`AWS_ENDPOINT_URL_EC2`), and records every request by operation; anything but
DescribeInstances is a 400 that is still recorded, so mutating calls are counted at the server.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from tests.fakes._wsgi import WsgiFake

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")


@dataclass
class FakeInstance:
    instance_id: str
    reservation_id: str
    instance_type: str
    state: str
    tags: dict[str, str]
    availability_zone: str
    launch_time: str


@dataclass
class _Region:
    instances: list[FakeInstance] = field(default_factory=list)


class Ec2Error(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Ec2Fake(WsgiFake):
    """DescribeInstances over instances added with `add_instances`; see the module docstring."""

    def __init__(self, account: str = "123456789012") -> None:
        self.account = account
        self._regions: dict[str, _Region] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._calls: list[str] = []
        self.page_sizes: list[int] = []  # instances returned per DescribeInstances page
        self.server_seconds = 0.0
        self._server: Any = None

    def add_instances(self, region: str, instance_type: str, count: int, *, tags: dict[str, str] | None = None,
                      state: str = "running", launch_time: str = "2026-01-05T09:00:00.000Z") -> list[str]:
        """One reservation of `count` instances (what RunInstances with MinCount=MaxCount=count makes)."""
        if state not in STATE_CODES:
            raise ValueError(f"unknown instance state {state!r}")
        n = next(self._ids)
        reservation = f"r-{n:017x}"
        out = []
        for i in range(count):
            iid = f"i-{n:08x}{i:09x}"
            self._regions.setdefault(region, _Region()).instances.append(FakeInstance(
                iid, reservation, instance_type, state, dict(tags or {}), f"{region}a", launch_time))
            out.append(iid)
        return out

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self.page_sizes.clear()
            self.server_seconds = 0.0

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        t0 = time.perf_counter()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body or environ.get("QUERY_STRING", "")).items()}
        op = params.get("Action", f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')}")
        with self._lock:
            self._calls.append(op)
        m = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        try:
            if op != "DescribeInstances":
                raise Ec2Error("UnsupportedOperation", f"the fake implements DescribeInstances only, not {op}")
            status, xml = "200 OK", self.describe_instances(m.group(1) if m else "us-east-1", params)
        except Ec2Error as exc:
            status = "400 Bad Request"
            xml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{exc.code}</Code>'
                   f"<Message>{escape(exc.message)}</Message></Error></Errors><RequestID>fake</RequestID></Response>")
        data = xml.encode()
        start_response(status, [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(data)))])
        with self._lock:
            self.server_seconds += time.perf_counter() - t0
        return [data]

    def describe_instances(self, region: str, params: dict[str, str]) -> str:
        """Filters instance-state-name, instance-type and tag:<key>; InstanceIds; MaxResults counted
        in instances (5..1000, not with InstanceIds); NextToken an offset into the filtered list."""
        filters = _indexed(params, "Filter")
        ids = {v for k, v in params.items() if k.startswith("InstanceId.")}
        max_results = params.get("MaxResults")
        if max_results is not None and ids:
            raise Ec2Error("InvalidParameterCombination", "The parameter instancesSet cannot be used with the "
                                                          "parameter maxResults")
        try:
            limit = int(max_results) if max_results is not None else 10**9
            offset = int(params.get("NextToken") or 0)
        except ValueError:
            raise Ec2Error("InvalidParameterValue", "MaxResults and NextToken must be integers here") from None
        if max_results is not None and not 5 <= limit <= 1000:
            raise Ec2Error("InvalidParameterValue", f"MaxResults {limit} is not between 5 and 1000")
        selected = [i for i in self._regions.get(region, _Region()).instances
                    if (not ids or i.instance_id in ids) and all(_matches(i, f) for f in filters)]
        if ids - {i.instance_id for i in selected} and not filters:
            missing = sorted(ids - {i.instance_id for i in selected})[0]
            raise Ec2Error("InvalidInstanceID.NotFound", f"The instance ID '{missing}' does not exist")
        page = selected[offset:offset + limit]
        with self._lock:
            self.page_sizes.append(len(page))
        parts = [f'<?xml version="1.0" encoding="UTF-8"?><DescribeInstancesResponse xmlns="{XMLNS}">'
                 "<requestId>fake</requestId><reservationSet>"]
        for rid, group in itertools.groupby(page, key=lambda i: i.reservation_id):
            parts.append(f"<item><reservationId>{rid}</reservationId><ownerId>{self.account}</ownerId>"
                         "<groupSet/><instancesSet>")
            parts.extend(_instance_xml(i) for i in group)
            parts.append("</instancesSet></item>")
        parts.append("</reservationSet>")
        if offset + limit < len(selected):
            parts.append(f"<nextToken>{offset + limit}</nextToken>")
        parts.append("</DescribeInstancesResponse>")
        return "".join(parts)


def _indexed(params: dict[str, str], prefix: str) -> list[tuple[str, set[str]]]:
    """Filter.1.Name / Filter.1.Value.1 ... -> [(name, {values})]."""
    out = []
    for n in itertools.count(1):
        name = params.get(f"{prefix}.{n}.Name")
        if name is None:
            return out
        out.append((name, {v for k, v in params.items() if k.startswith(f"{prefix}.{n}.Value.")}))


def _matches(i: FakeInstance, f: tuple[str, set[str]]) -> bool:
    name, values = f
    if name == "instance-state-name":
        return i.state in values
    if name == "instance-type":
        return i.instance_type in values
    if name.startswith("tag:"):
        return i.tags.get(name[4:]) in values
    raise Ec2Error("InvalidParameterValue", f"the fake does not support the filter {name!r}")


def _instance_xml(i: FakeInstance) -> str:
    tags: Iterable[str] = (f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in i.tags.items())
    return (f"<item><instanceId>{i.instance_id}</instanceId><imageId>ami-0c0ffee0c0ffee000</imageId>"
            f"<instanceState><code>{STATE_CODES[i.state]}</code><name>{i.state}</name></instanceState>"
            f"<instanceType>{escape(i.instance_type)}</instanceType><launchTime>{i.launch_time}</launchTime>"
            f"<placement><availabilityZone>{i.availability_zone}</availabilityZone><tenancy>default</tenancy>"
            f"</placement><tagSet>{''.join(tags)}</tagSet></item>")


__all__ = ["Ec2Fake", "FakeInstance"]
