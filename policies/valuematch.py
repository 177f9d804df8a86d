"""Cloud Custodian's value-filter semantics as pure functions: one resource value against one policy value.

Why follow c7n to the letter (c7n/filters/core.py, ValueFilter.match and process_value_type,
c7n 0.9.x): a policy a c7n user already reads must select the same resources here. So a missing
tag is `None`, and `None` compares as c7n compares it: `ne` matches it, `gt` never does (a
TypeError is "no match"), `in` treats it as an empty tuple; `absent`, `present`, `empty` and
`not-null` are values, checked before any op; `value_type: age` compares "now - N days" to the
resource's date with the operands swapped, so `op: gt, value: 30` reads "older than 30 days".
The only difference: `now` is passed in (a sweep's clock), never read from the system.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import jmespath

from costwarden.state.domain import Resource


def _regex(value: Any, pattern: str) -> bool:
    return isinstance(value, str) and bool(re.match(pattern, value, flags=re.IGNORECASE))


def _regex_case(value: Any, pattern: str) -> bool:
    return isinstance(value, str) and bool(re.match(pattern, value))


OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt,
    "le": operator.le, "in": lambda x, y: x in y, "not-in": lambda x, y: x not in y,
    "regex": _regex, "regex-case": _regex_case,
}
# c7n's other spellings of the same operators
OP_ALIASES = {"equal": "eq", "not-equal": "ne", "greater-than": "gt", "gte": "ge", "lte": "le",
              "less-than": "lt", "ni": "not-in"}
# `op: absent` / `op: present` are accepted as the values of the same names (c7n writes them as values)
VALUE_OPS = ("absent", "present")
VALUE_TYPES = ("age", "size", "integer", "normalize")
SPECIAL_VALUES = ("absent", "present", "empty", "not-null")


def canonical_op(op: str) -> str:
    """The canonical name of an op or c7n alias; ValueError names the known ones."""
    op = OP_ALIASES.get(op, op)
    if op not in OPS and op not in VALUE_OPS:
        known = ", ".join([*OPS, *VALUE_OPS, *OP_ALIASES])
        raise ValueError(f"unknown op {op!r}; known: {known}")
    return op


def document(r: Resource) -> dict[str, Any]:
    """What a value filter's JMESPath key reads: the resource's attributes, its core fields and its tags.

    Tags appear twice: `tags` as a mapping (`tags.env`) and `Tags` as AWS's Key/Value list, so a
    c7n key such as `Tags[?Key=='env'].Value` still reads.
    """
    doc = dict(r.attrs)
    doc.update(resource_id=r.resource_id, kind=r.kind, state=r.state, region=r.region, account=r.account,
               provider=r.provider, resource_type=r.resource_type, tags=dict(r.tags),
               Tags=[{"Key": k, "Value": v} for k, v in r.tags.items()])
    return doc


def compile_key(key: str) -> Any:
    """A compiled JMESPath expression (raises jmespath's ParseError on a bad key)."""
    return jmespath.compile(key)


def resource_value(key: str, compiled: Any, r: Resource) -> Any:
    """The value `key` names on `r`: `tag:Name` is the tag (None when the resource lacks it)."""
    if key.startswith("tag:"):
        return r.tags.get(key.split(":", 1)[1])
    return compiled.search(document(r))


def parse_date(value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime, an ISO 8601 string or epoch seconds; None otherwise."""
    if isinstance(value, datetime):
        d = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=timezone.utc)
    elif isinstance(value, str) and value.strip():
        try:
            d = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def convert(vtype: str, sentinel: Any, value: Any, now: datetime) -> tuple[Any, Any]:
    """(policy value, resource value) after `value_type`, as c7n's process_value_type returns them."""
    if vtype == "normalize" and isinstance(value, str):
        return sentinel, value.strip().lower()
    if vtype == "integer":
        try:
            value = int(str(value).strip())
        except ValueError:
            value = 0
        return sentinel, value
    if vtype == "size":
        try:
            return sentinel, len(value)
        except TypeError:
            return sentinel, 0
    if vtype == "age":
        if not isinstance(sentinel, datetime):
            sentinel = now - timedelta(days=float(sentinel))
        when = parse_date(value)
        # swapped, as in c7n: `op: gt, value: 30` = the resource's date is before now - 30 days
        return (when if when is not None else 0), sentinel
    return sentinel, value


def matches(op: str | None, expected: Any, vtype: str | None, found: Any, now: datetime) -> bool:
    """c7n's ValueFilter.match on one resource value `found`."""
    if op in VALUE_OPS:  # `op: absent` is `value: absent`
        expected, op = op, None
    if op in ("in", "not-in") and found is None:
        found = ()
    if vtype is not None:
        expected, found = convert(vtype, expected, found, now)
    if found is None and expected == "absent":
        return True
    if found is not None and expected == "present":
        return True
    if expected == "not-null" and found:
        return True
    if expected == "empty" and not found:
        return True
    if op:
        try:
            return bool(OPS[op](found, expected))
        except TypeError:
            return False
    return bool(found == expected)
