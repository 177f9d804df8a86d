"""The policy file schema (pydantic). Users of Cloud Custodian should feel at home:
`name`, `resource`, `filters`, `actions`, plus `mode` and `limits`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import time
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from costwarden.policies.resources import RESOURCE_TYPES

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChangeWindow(Strict):
    """When automatic actions may run. Outside every window an auto action is only reported."""

    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS), description="Days the window opens on (mon..sun).")
    start: time = Field(description="Opening time, HH:MM; a window that crosses midnight belongs to its start day.")
    end: time = Field(description="Closing time, HH:MM.")
    timezone: str = Field("UTC", description="IANA time zone of start and end.")

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d.lower()[:3] not in WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday {bad[0]!r}; use mon..sun")
        return [d.lower()[:3] for d in v]

    @field_validator("start", "end", mode="before")
    @classmethod
    def _sexagesimal(cls, v: Any) -> Any:
        # YAML 1.1 reads an unquoted 22:00 as the integer 1320 (base 60); take it back as a time
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 24 * 60:
            return f"{v // 60:02d}:{v % 60:02d}"
        return v

    @field_validator("start", "end")
    @classmethod
    def _naive(cls, v: time) -> time:
        return v.replace(tzinfo=None)  # the window's own `timezone` field says where it is

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class Limits(Strict):
    max_actions_per_run: int = Field(10, ge=0, description="Actions beyond this in one run are only reported.")
    max_monthly_usd_per_auto_action: float = Field(
        5000.0, ge=0, description="An auto action touching more monthly spend than this needs approval.")
    protected_tags: dict[str, str] = Field(
        default_factory=lambda: {"costwarden:protect": "true"},
        description="A resource carrying any of these tag values is never acted on.")
    environment_tag: str = Field("env", description="The tag naming a resource's environment.")
    approval_environments: list[str] = Field(
        default_factory=lambda: ["prod", "production"],
        description="Resources in these environments always need approval.")
    cooldown_hours: float = Field(24.0, ge=0, description="No second action on a resource within this time.")
    change_windows: list[ChangeWindow] = Field(default_factory=list, description=(
        "When set, an action that would run automatically outside every window is only reported."))
    approval_ttl_hours: float = Field(72.0, gt=0, description="How long an approval request stays open.")


class ApprovalRules(Strict):
    """Who may approve this policy's actions, and where they are asked."""

    approvers: list[str] = Field(default_factory=list, description="Slack user IDs (U...) allowed to approve.")
    approver_groups: list[str] = Field(default_factory=list, description=(
        "Slack user group IDs (S...) whose members may approve."))
    channel: str | None = Field(None, description="Slack channel for approval requests; default: slack.channel.")
    two_approvers_for_destructive: bool = Field(True, description=(
        "Delete/terminate actions need two distinct approvers."))
    snooze_hours: float = Field(24.0, gt=0, description="How far Snooze pushes the expiry back.")

    @field_validator("approvers")
    @classmethod
    def _user_ids(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if not re.fullmatch(r"[UW][A-Z0-9]{2,}", u)]
        if bad:
            raise ValueError(f"not a Slack user ID: {bad[0]!r} (e.g. U012AB3CD)")
        return v

    @field_validator("approver_groups")
    @classmethod
    def _group_ids(cls, v: list[str]) -> list[str]:
        bad = [g for g in v if not re.fullmatch(r"S[A-Z0-9]{2,}", g)]
        if bad:
            raise ValueError(f"not a Slack user group ID: {bad[0]!r} (e.g. S0614TZR7)")
        return v


BLOCKS = ("and", "or", "not")


def normalize_filter(item: Any) -> Any:
    """Cloud Custodian's short forms, written out: `- name` -> `{type: name}`; `- or: [...]` ->
    `{type: or, filters: [...]}`; a one-key mapping without `type` (`- tag:env: prod`,
    `- state: running`) -> a value filter `{type: value, key: ..., value: ...}`."""
    if isinstance(item, str):
        return {"type": item}
    if isinstance(item, dict) and "type" not in item and len(item) == 1:
        [(key, value)] = item.items()
        if key in BLOCKS and isinstance(value, list):
            return {"type": key, "filters": [normalize_filter(v) for v in value]}
        return {"type": "value", "key": str(key), "value": value}
    if isinstance(item, dict) and item.get("type") in BLOCKS and isinstance(item.get("filters"), list):
        return {**item, "filters": [normalize_filter(v) for v in item["filters"]]}
    return item


class FilterSpec(BaseModel):
    """`type` names a registered filter (a detector, `value`, `and`, `or`, `not`); the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="A filter name; the entry's other keys are that filter's parameters.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ActionSpec(BaseModel):
    """`type` names a registered action; the other keys are its parameters."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(description="An action name; the entry's other keys are that action's parameters.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


_SCHEDULE = re.compile(r"^(every\s+\d+\s*[smhd]|(\S+\s+){4}\S+)$")


class Policy(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=120,
                      description="Unique across every loaded file.")
    resource: str = Field(description="The resource type the policy sweeps.")
    description: str = Field("", description="Free text.")
    mode: Literal["report", "approve", "auto"] = Field("report", description=(
        "report: findings only; approve: every action needs a person; auto: actions within the limits run."))
    schedule: str | None = Field(None, description="'every 1h' or a five-field cron expression")
    filters: list[FilterSpec] = Field(min_length=1, description=(
        "What to look for, all at once (AND): plain filters (`value`, `tag:Key`, `and`/`or`/`not`) narrow "
        "the set and the detectors among them flag what is left; `- name` is short for `- type: name`."))
    actions: list[ActionSpec] = Field(default_factory=list, description="What to do about each finding.")
    limits: Limits = Field(default_factory=Limits, description="What the guard allows.")
    approval: ApprovalRules = Field(default_factory=ApprovalRules, description="Who may approve, and where.")
    max_resources: int | None = Field(None, ge=0, validation_alias=AliasChoices("max_resources", "max-resources"),
                                      description=(
        "A guard (c7n's max-resources): when the policy flags more resources than this in one run, none "
        "of its actions runs (each is only reported, with the reason); `max-resources` is accepted too."))

    @field_validator("resource")
    @classmethod
    def _resource(cls, v: str) -> str:
        known = sorted(RESOURCE_TYPES)
        if v not in known:
            raise ValueError(f"unknown resource {v!r}; known: {', '.join(known)}")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is not None and not _SCHEDULE.match(v.strip()):
            raise ValueError("use 'every <n><s|m|h|d>' or a five-field cron expression")
        return v

    @field_validator("actions", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # `- stop` is shorthand for `- type: stop`, as in Cloud Custodian
        if isinstance(v, list):
            return [{"type": item} if isinstance(item, str) else item for item in v]
        return v

    @field_validator("filters", mode="before")
    @classmethod
    def _filter_shorthand(cls, v: Any) -> Any:
        return [normalize_filter(item) for item in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _mode_needs_actions(self) -> Policy:
        if self.mode != "report" and not self.actions:
            raise ValueError(f"mode '{self.mode}' needs at least one action")
        return self

    @property
    def content_hash(self) -> str:
        """The hash recorded with every decision, so an audit names the exact policy text it obeyed."""
        dump = self.model_dump(mode="json")
        if dump.get("max_resources") is None:
            dump.pop("max_resources", None)  # unset, the hash is the one the policy had before the field existed
        blob = json.dumps(dump, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


class PolicyFile(Strict):
    policies: list[Policy] = Field(min_length=1)
