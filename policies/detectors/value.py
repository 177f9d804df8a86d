"""value (and its `tag:Key` shorthand): Cloud Custodian's generic filter on a resource's attributes and tags.

`key` is a JMESPath expression over the resource's document (its attributes, `resource_id`,
`kind`, `state`, `region`, `account`, `tags`; see policies/valuematch.py) or `tag:Name`.
The semantics are c7n's ValueFilter, op for op (see policies/valuematch.py for why).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from jmespath.exceptions import JMESPathError
from pydantic import Field, field_validator, model_validator

from costwarden.policies import valuematch as vm
from costwarden.policies.detectors.base import DetectorParams, PlainFilter
from costwarden.policies.registry import detectors
from costwarden.policies.resources import RESOURCE_TYPES
from costwarden.state.domain import Resource


class ValueParams(DetectorParams):
    key: str = Field(min_length=1, description=(
        "JMESPath over the resource's attributes (e.g. `state`, `size_gb`, `tags.env`), or `tag:Name`."))
    value: Any = Field(None, description=(
        "The value compared to; `absent`, `present`, `empty` and `not-null` test presence. With "
        "`value_type: age`, a number of days; with `in`/`not-in`, a list."))
    op: str | None = Field(None, description=(
        "eq (default), ne, gt, ge, lt, le, in, not-in, regex, regex-case, absent, present "
        "(c7n's aliases equal, not-equal, greater-than, gte, lte, less-than, ni are accepted)."))
    value_type: str | None = Field(None, description=(
        "age (the resource value is a date; `value` is days), size (length), integer, normalize "
        "(strip and lowercase the resource value)."))

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if not v.startswith("tag:"):
            try:
                vm.compile_key(v)
            except JMESPathError as exc:
                raise ValueError(f"bad JMESPath key {v!r}: {str(exc).splitlines()[0]}") from None
        elif len(v) == len("tag:"):
            raise ValueError("`tag:` needs a tag name, e.g. tag:env")
        return v

    @field_validator("op")
    @classmethod
    def _op(cls, v: str | None) -> str | None:
        return None if v is None else vm.canonical_op(v)

    @field_validator("value_type")
    @classmethod
    def _vtype(cls, v: str | None) -> str | None:
        if v is not None and v not in vm.VALUE_TYPES:
            raise ValueError(f"unknown value_type {v!r}; known: {', '.join(vm.VALUE_TYPES)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ValueParams:
        if self.op in ("regex", "regex-case"):
            if not isinstance(self.value, str):
                raise ValueError(f"op {self.op} needs a string value (a regular expression)")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"bad regex {self.value!r}: {exc}") from None
        if self.op in ("in", "not-in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs a list value")
        if self.value_type == "age" and (isinstance(self.value, bool) or not isinstance(self.value, (int, float))):
            raise ValueError("value_type age needs a number of days as value")
        return self


@detectors.register("value")
class ValueFilter(PlainFilter):
    resource_types = tuple(RESOURCE_TYPES)
    permissions = ()  # reads the attributes the collector already fetched
    Params = ValueParams
    params: ValueParams

    def __init__(self, params: ValueParams) -> None:
        super().__init__(params)
        self._compiled = None if params.key.startswith("tag:") else vm.compile_key(params.key)

    def matches(self, resource: Resource, now: datetime) -> bool:
        p = self.params
        return vm.matches(p.op, p.value, p.value_type, vm.resource_value(p.key, self._compiled, resource), now)
