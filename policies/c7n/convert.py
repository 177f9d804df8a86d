"""Convert a Cloud Custodian policy file into Costwarden policies, and say line by line what could not be.

Why a policy is converted whole or not at all: filters narrow one set (AND), so dropping a
filter widens it, and an action on a wider set than its author wrote is the one mistake this tool
must not make. The only part dropped from a converted policy is `notify` (Costwarden reports and
asks for approval in Slack on its own), and that is listed too. Each converted policy is then
validated by the policy loader, so what is printed loads.

Sources of c7n's semantics: c7n/filters/core.py (ValueFilter), c7n/filters/metrics.py (defaults:
days 14, statistics Average, op less-than), c7n/filters/offhours.py, c7n/tags.py (mark-for-op,
marked-for-op: tag maid_status, days 4), c7n/policy.py (max-resources).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from costwarden.policies import valuematch as vm
from costwarden.policies.c7n.keys import GPU_METRICS, KEYS, LESS, LIST_KEYS, RESOURCES
from costwarden.policies.errors import PolicyError
from costwarden.policies.loader import load_policy_data
from costwarden.policies.yamlsrc import LocatedYaml, PathKey

POLICY_KEYS_IGNORED = ("comment", "comments", "metadata", "tags")
PRESENCE = ("absent", "present", "empty", "not-null")


@dataclass(frozen=True)
class Line:
    """One line of the report: where in the c7n file, which policy, which part, and why."""

    line: int | None
    policy: str
    part: str
    reason: str

    def render(self, path: str) -> str:
        return f"{path}:{self.line or '?'}: policy {self.policy}: {self.part}: {self.reason}"


@dataclass
class Conversion:
    policies: list[dict[str, Any]] = field(default_factory=list)
    not_converted: list[Line] = field(default_factory=list)  # each reason a policy was left out
    notes: list[Line] = field(default_factory=list)  # converted, but read differently: worth a look
    total: int = 0


class Unconvertible(Exception):
    def __init__(self, loc: PathKey, part: str, reason: str) -> None:
        super().__init__(reason)
        self.loc, self.part, self.reason = loc, part, reason


@dataclass
class _Policy:
    """The state of one policy's conversion: its resource, its notes, what its filters imply for actions."""

    doc: LocatedYaml
    name: str
    rtype: str
    notes: list[Line]
    schedule_op: str | None = None

    def note(self, loc: PathKey, part: str, reason: str) -> None:
        self.notes.append(Line(self.doc.line_of(loc), self.name, part, reason))


def convert_document(doc: LocatedYaml) -> Conversion:
    """Every policy of a parsed c7n file; a file that is not one is a PolicyError."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("policies"), list):
        raise PolicyError(doc.path, "not a Cloud Custodian file: expected a top-level 'policies' list", line=1)
    out = Conversion(total=len(data["policies"]))
    seen: set[str] = set()
    for i, raw in enumerate(data["policies"]):
        loc: PathKey = ("policies", i)
        name = str(raw.get("name", f"policy-{i + 1}")) if isinstance(raw, dict) else f"policy-{i + 1}"
        notes: list[Line] = []
        try:
            converted = _policy(doc, loc, raw, name, notes)
            if converted["name"] in seen:
                raise Unconvertible(loc + ("name",), "name", f"name {converted['name']!r} is used twice")
            load_policy_data({"policies": [converted]}, doc.path)
        except Unconvertible as exc:
            out.not_converted.append(Line(doc.line_of(exc.loc), name, exc.part, exc.reason))
            continue
        except PolicyError as exc:
            out.not_converted.append(Line(doc.line_of(loc), name, exc.field or "policy",
                                          f"the converted policy does not load: {exc.message}"))
            continue
        seen.add(converted["name"])
        out.policies.append(converted)
        out.notes.extend(notes)
    return out


def _policy(doc: LocatedYaml, loc: PathKey, raw: Any, name: str, notes: list[Line]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Unconvertible(loc, "policy", "a policy is a mapping")
    resource = str(raw.get("resource", ""))
    rtype = RESOURCES.get(resource.removeprefix("aws."))
    if rtype is None:
        raise Unconvertible(loc + ("resource",), "resource", f"resource {resource!r} has no Costwarden equivalent "
                            f"(converted: {', '.join(RESOURCES)})")
    p = _Policy(doc, name, rtype, notes)
    new_name = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")[:120] or "policy"
    if new_name != name:
        p.note(loc + ("name",), "name", f"renamed {new_name!r} (lowercase letters, digits, '.', '_', '-')")
    out: dict[str, Any] = {"name": new_name, "resource": rtype, "mode": "report"}
    if raw.get("description"):
        out["description"] = str(raw["description"])
    for key in raw:
        k = str(key)
        if k in ("name", "resource", "description", "filters", "actions", "max-resources"):
            continue
        if k == "mode":
            mtype = (raw["mode"] or {}).get("type", "pull") if isinstance(raw["mode"], dict) else raw["mode"]
            if mtype != "pull":
                p.note(loc + ("mode",), "mode", f"c7n mode {mtype!r} (an event or Lambda trigger) does not apply: "
                                                "Costwarden runs the policy on its own schedule")
        elif k in POLICY_KEYS_IGNORED:
            p.note(loc + (k,), k, "ignored (no effect on what the policy does)")
        else:
            raise Unconvertible(loc + (k,), k, f"policy key {k!r} has no Costwarden equivalent")
    if "max-resources" in raw:
        limit = raw["max-resources"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise Unconvertible(loc + ("max-resources",), "max-resources",
                                "only a whole number of resources converts (not a percent or an object)")
        out["max_resources"] = limit
    filters = raw.get("filters") or []
    out["filters"] = [_filter(p, loc + ("filters", j), f) for j, f in enumerate(filters)]
    if not out["filters"]:
        out["filters"] = [{"type": "value", "key": "resource_id", "value": "present"}]
        p.note(loc, "filters", "no filters: every resource of the type matches (written as resource_id present)")
    actions = _actions(p, loc + ("actions",), raw.get("actions") or [])
    if actions:
        out["actions"] = actions
        out["mode"] = "approve"
        p.note(loc + ("actions",), "actions", "c7n acts at once; the converted policy asks for approval "
                                              "(mode: approve; set mode: auto to act within the limits)")
    return out


def _filter(p: _Policy, loc: PathKey, f: Any) -> dict[str, Any]:
    if isinstance(f, str):
        f = {"type": f}
    if not isinstance(f, dict):
        raise Unconvertible(loc, "filter", "a filter is a mapping")
    if "type" not in f and len(f) == 1:
        [(key, value)] = f.items()
        if key in ("and", "or", "not"):
            if not isinstance(value, list):
                raise Unconvertible(loc, str(key), f"`{key}` holds a list of filters")
            return {key: [_filter(p, loc + (key, k), c) for k, c in enumerate(value)]}
        return _value(p, loc, {"type": "value", "key": str(key), "value": value})
    kind = f.get("type")
    part = f"filter {kind}"
    if kind == "value":
        return _value(p, loc, f)
    if kind == "metrics":
        return _metrics(p, loc, f)
    if kind in ("offhour", "onhour"):
        return _offhours(p, loc, f)
    if kind == "marked-for-op":
        _only(loc, part, f, ("op", "tag", "skew", "tz"))
        _instances(p, loc, part)
        if str(f.get("tz", "utc")).lower() not in ("utc", "gmt", "z"):
            p.note(loc + ("tz",), part, f"tz {f['tz']!r} ignored: Costwarden counts a mark's date in UTC")
        out: dict[str, Any] = {"type": "marked-for-op", "op": str(f.get("op", "stop"))}
        if f.get("skew"):
            out["skew_days"] = f["skew"]
        _mark_tag(p, loc, part, f, out)
        return out
    raise Unconvertible(loc, part, f"filter type {kind!r} has no Costwarden equivalent")


def _only(loc: PathKey, part: str, f: dict[str, Any], allowed: tuple[str, ...]) -> None:
    extra = sorted(str(k) for k in f if k != "type" and k not in allowed)
    if extra:
        raise Unconvertible(loc + (extra[0],), part, f"parameter {extra[0]!r} has no Costwarden equivalent")


def _instances(p: _Policy, loc: PathKey, part: str) -> None:
    if p.rtype != "aws.ec2":
        raise Unconvertible(loc, part, f"converts on ec2 only, not on {p.rtype}")


def _mark_tag(p: _Policy, loc: PathKey, part: str, f: dict[str, Any], out: dict[str, Any]) -> None:
    if f.get("tag") and f["tag"] != "maid_status":
        out["tag"] = str(f["tag"])
    p.note(loc, part, "marks are Costwarden's (stop@YYYY-MM-DD, tag costwarden:op unless `tag` is set); "
                      "a mark c7n wrote ('Resource does not meet policy: stop@...') is not read")


def _value(p: _Policy, loc: PathKey, f: dict[str, Any]) -> dict[str, Any]:
    _only(loc, "filter value", f, ("key", "value", "op", "value_type"))
    key, value = str(f.get("key", "")), f.get("value")
    part = f"filter value {key}"
    out: dict[str, Any] = {"type": "value"}
    if f.get("op") is not None:
        try:
            out["op"] = vm.canonical_op(str(f["op"]))
        except ValueError as exc:
            raise Unconvertible(loc + ("op",), part, str(exc)) from None
    vtype = f.get("value_type")
    if vtype is not None:
        if vtype not in vm.VALUE_TYPES:
            raise Unconvertible(loc + ("value_type",), part, f"value_type {vtype!r} has no Costwarden equivalent "
                                f"(known: {', '.join(vm.VALUE_TYPES)})")
        out["value_type"] = vtype
    if key.startswith("tag:") or key == "Tags" or key.startswith("Tags["):
        out["key"] = key
    elif key in KEYS[p.rtype]:
        new_key, transform = KEYS[p.rtype][key]
        out["key"] = new_key
        value = value if vtype in ("size", "age") else transform(value)
    elif (p.rtype, key) in LIST_KEYS:
        if vtype != "size" and value not in PRESENCE and value != []:
            raise Unconvertible(loc, part, f"{key} converts only for empty/not-null/absent/present or value_type "
                                           "size (Costwarden holds the attached instance ids, not c7n's objects)")
        out["key"] = LIST_KEYS[(p.rtype, key)]
    else:
        known = ", ".join(KEYS[p.rtype])
        raise Unconvertible(loc + ("key",), part, f"key {key!r} has no Costwarden attribute on {p.rtype} "
                                                  f"(converted: tag:*, {known})")
    out["value"] = value
    order = ("type", "key", "op", "value_type", "value")
    return {k: out[k] for k in order if k in out}


def _metrics(p: _Policy, loc: PathKey, f: dict[str, Any]) -> dict[str, Any]:
    name = str(f.get("name", ""))
    part = f"filter metrics {name}"
    _only(loc, part, f, ("name", "days", "op", "value", "statistics", "namespace", "period", "missing-value"))
    days, op, value = f.get("days", 14), str(f.get("op", "less-than")), f.get("value")
    if not isinstance(days, (int, float)) or not 1 <= math.ceil(days) <= 63:
        raise Unconvertible(loc + ("days",), part, "days converts from 1 to 63 (Costwarden's lookback)")
    if p.rtype == "aws.ec2" and name in GPU_METRICS and op in LESS and isinstance(value, (int, float)):
        p.note(loc, part, "c7n compares the window's Average (one datapoint unless `period` is set); idle-gpu "
                          "compares the 95th percentile of hourly values, so a few busy hours keep an instance")
        return {"type": "idle-gpu", "lookback_days": math.ceil(days), "gpu_util_threshold_pct": value}
    zero = (op in ("eq", "equal", "le", "lte") and value == 0) or (op in ("lt", "less-than") and value == 1)
    if p.rtype == "aws.sagemaker-endpoint" and name == "Invocations" and zero:
        return {"type": "zombie-endpoint", "lookback_days": math.ceil(days)}
    raise Unconvertible(loc, part, f"metric {name!r} ({op} {value}) on {p.rtype} has no Costwarden filter: "
                                   "converted are GPU utilization under a value on ec2 (idle-gpu) and zero "
                                   "Invocations on sagemaker-endpoint (zombie-endpoint)")


def _offhours(p: _Policy, loc: PathKey, f: dict[str, Any]) -> dict[str, Any]:
    kind = str(f["type"])
    part = f"filter {kind}"
    _instances(p, loc, part)
    if f.get("opt-out"):
        raise Unconvertible(loc + ("opt-out",), part, "opt-out (act on untagged instances) has no equivalent: "
                                                      "Costwarden schedules only instances that carry a window")
    p.schedule_op = "stop" if kind == "offhour" else "start"
    p.note(loc, part, "each instance's window is read from its costwarden:schedule tag "
                      "('23:00-06:00 Europe/Berlin mon,tue,wed,thu,fri', set by the schedule action), not from "
                      "c7n's maid_offhours tag or this filter's hours; a start follows only Costwarden's own stop")
    return {"type": "schedule", "ops": [p.schedule_op]}


def _actions(p: _Policy, loc: PathKey, raw: list[Any]) -> list[dict[str, Any]]:
    specs = [{"type": a} if isinstance(a, str) else a for a in raw]
    kinds = [a.get("type") if isinstance(a, dict) else None for a in specs]
    out: list[dict[str, Any]] = []
    for j, a in enumerate(specs):
        aloc = loc + (j,)
        if not isinstance(a, dict):
            raise Unconvertible(aloc, "action", "an action is a name or a mapping")
        kind = a.get("type")
        part = f"action {kind}"
        if kind == "notify":
            p.note(aloc, part, "dropped: Costwarden reports findings and asks approvers in Slack itself")
        elif kind in ("stop", "start"):
            _only(aloc, part, a, ())
            _instances(p, aloc, part)
            if p.schedule_op:
                if not any(x["type"] == "enforce-schedule" for x in out):
                    out.append({"type": "enforce-schedule"})
            else:
                out.append({"type": kind})
        elif kind == "tag":
            _only(aloc, part, a, ("key", "value", "tags", "tag"))
            _instances(p, aloc, part)
            tags = {str(k): str(v) for k, v in (a.get("tags") or {}).items()}
            key = a.get("key") or a.get("tag")
            if key:
                tags[str(key)] = str(a.get("value", ""))
            out.append({"type": "tag", "tags": tags})
        elif kind == "mark-for-op":
            _only(aloc, part, a, ("op", "days", "tag", "msg"))
            _instances(p, aloc, part)
            spec: dict[str, Any] = {"type": "mark-for-op", "op": str(a.get("op", "stop")), "days": a.get("days", 4)}
            if a.get("msg"):
                p.note(aloc + ("msg",), part, "msg ignored: Costwarden's mark is op@date")
            _mark_tag(p, aloc, part, a, spec)
            out.append(spec)
        elif kind == "snapshot" and p.rtype == "aws.ebs-volume" and "delete" in kinds:
            continue  # with the delete below: snapshot-and-delete
        elif kind == "delete" and p.rtype == "aws.ebs-volume":
            _only(aloc, part, a, ("force",))
            if "snapshot" not in kinds:
                p.note(aloc, part, "converted to snapshot-and-delete: Costwarden keeps a final snapshot")
            out.append({"type": "snapshot-and-delete"})
        elif kind == "delete" and p.rtype == "aws.sagemaker-endpoint":
            _only(aloc, part, a, ())
            out.append({"type": "delete-endpoint"})
        elif kind == "release" and p.rtype == "aws.elastic-ip":
            _only(aloc, part, a, ("force",))
            out.append({"type": "release-address"})
        else:
            raise Unconvertible(aloc, part, f"action {kind!r} on {p.rtype} has no Costwarden equivalent")
    return out
