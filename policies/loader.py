"""Load and validate policy files. Errors name the file, the line and the field; nothing half-loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from costwarden.policies.actions.base import Action
from costwarden.policies.detectors.base import Detector
from costwarden.policies.detectors.boolean import Block
from costwarden.policies.errors import PolicyError
from costwarden.policies.evaluate import PlacementError, PolicyFilters, arrange
from costwarden.policies.registry import actions, detectors, load_builtin
from costwarden.policies.schema import Policy, PolicyFile
from costwarden.policies.yamlsrc import LocatedYaml, load_located_yaml


@dataclass
class LoadedPolicy:
    """A validated policy with its filters and actions built from the registry.

    `detectors` are the filters that flag (their metrics and lookback drive collection);
    `filters` says how all of them judge a resource (policies/evaluate.py).
    """

    policy: Policy
    source: str
    detectors: list[Detector]
    actions: list[Action]
    filters: PolicyFilters = field(default_factory=PolicyFilters)

    @property
    def filter_names(self) -> list[str]:
        return [f.type for f in self.policy.filters]

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def content_hash(self) -> str:
        return self.policy.content_hash


def default_pack_path() -> Path:
    return Path(str(resources.files("costwarden.policies") / "packs" / "default.yml"))


def _build_filter(doc: LocatedYaml, loc: tuple, resource: str, spec: Any) -> Detector:
    """One filter entry (a block builds its children the same way, one level down)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise PolicyError(doc.path, "a filter is a name, a mapping with `type`, a `tag:Key: value` pair or an "
                                    "`and`/`or`/`not` block", line=doc.line_of(loc), field=".".join(map(str, loc)))
    kind = spec["type"]
    params = {k: v for k, v in spec.items() if k != "type"}
    if kind not in detectors:
        raise PolicyError(doc.path, f"unknown filter type {kind!r}; known: {', '.join(detectors.names())}",
                          line=doc.line_of(loc + ("type",)), field=".".join(map(str, loc + ("type",))))
    cls = detectors.get(kind)
    if resource not in cls.resource_types:
        raise PolicyError(doc.path, f"filter {kind!r} does not apply to resource {resource!r}",
                          line=doc.line_of(loc), field=".".join(map(str, loc)))
    try:
        built = cls(cls.Params.model_validate(params))
    except ValidationError as exc:
        raise doc.error_from_validation(exc, loc) from None
    if isinstance(built, Block):
        built.children = [_build_filter(doc, loc + ("filters", k), resource, child)
                          for k, child in enumerate(params["filters"])]
    return built


def _filter_loc(base: tuple, path: tuple[int, ...]) -> tuple:
    loc = base + ("filters", path[0])
    for k in path[1:]:
        loc += ("filters", k)
    return loc


def _build(doc: LocatedYaml, index: int, policy: Policy) -> LoadedPolicy:
    base = ("policies", index)
    built_filters = [_build_filter(doc, base + ("filters", j), policy.resource, spec.model_dump())
                     for j, spec in enumerate(policy.filters)]
    try:
        arranged = arrange(built_filters)
    except PlacementError as exc:
        loc = _filter_loc(base, exc.path)
        raise PolicyError(doc.path, str(exc), line=doc.line_of(loc), field=".".join(map(str, loc))) from None
    built_actions: list[Action] = []
    for j, spec in enumerate(policy.actions):
        loc = base + ("actions", j)
        if spec.type not in actions:
            raise PolicyError(doc.path, f"unknown action type {spec.type!r}; known: {', '.join(actions.names())}",
                              line=doc.line_of(loc), field=".".join(map(str, loc + ("type",))))
        acls = actions.get(spec.type)
        if policy.resource not in acls.resource_types:
            raise PolicyError(doc.path, f"action {spec.type!r} does not apply to resource {policy.resource!r}",
                              line=doc.line_of(loc), field=".".join(map(str, loc)))
        try:
            built_actions.append(acls(acls.Params.model_validate(spec.params)))
        except ValidationError as exc:
            raise doc.error_from_validation(exc, loc) from None
    return LoadedPolicy(policy, str(doc.path), arranged.all_detectors, built_actions, arranged)


def load_policy_file(path: str | Path) -> list[LoadedPolicy]:
    load_builtin()
    doc = load_located_yaml(path)
    if not isinstance(doc.data, dict):
        raise PolicyError(doc.path, "a policy file is a mapping with a top-level 'policies' list", line=1)
    try:
        parsed = PolicyFile.model_validate(doc.data)
    except ValidationError as exc:
        raise doc.error_from_validation(exc) from None
    return [_build(doc, i, p) for i, p in enumerate(parsed.policies)]


def load_policy_data(data: Any, path: str | Path) -> list[LoadedPolicy]:
    """Validate policies held in memory (e.g. just converted) exactly as a file of them; no line numbers."""
    load_builtin()
    doc = LocatedYaml(Path(path), data, {})
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise doc.error_from_validation(exc) from None
    return [_build(doc, i, p) for i, p in enumerate(parsed.policies)]


def load_policies(paths: list[str | Path]) -> list[LoadedPolicy]:
    """Load files (or every *.yml/*.yaml in a directory); the default pack when none are given."""
    files: list[Path] = []
    for p in paths or [default_pack_path()]:
        p = Path(p)
        if p.is_dir():
            found = sorted([*p.glob("*.yml"), *p.glob("*.yaml")])
            if not found:
                raise PolicyError(p, "directory holds no *.yml or *.yaml policy files")
            files.extend(found)
        else:
            files.append(p)
    loaded: list[LoadedPolicy] = []
    seen: dict[str, str] = {}
    for f in files:
        for lp in load_policy_file(f):
            if lp.name in seen:
                raise PolicyError(f, f"policy name {lp.name!r} is already defined in {seen[lp.name]}", field="name")
            seen[lp.name] = str(f)
            loaded.append(lp)
    return loaded
