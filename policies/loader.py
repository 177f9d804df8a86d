"""Load and validate policy files. Errors name the file, the line and the field; nothing half-loads."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from costwarden.policies.actions.base import Action
from costwarden.policies.detectors.base import Detector
from costwarden.policies.errors import PolicyError
from costwarden.policies.registry import actions, detectors, load_builtin
from costwarden.policies.schema import Policy, PolicyFile
from costwarden.policies.yamlsrc import LocatedYaml, load_located_yaml


@dataclass
class LoadedPolicy:
    """A validated policy with its detectors and actions built from the registry."""

    policy: Policy
    source: str
    detectors: list[Detector]
    actions: list[Action]

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def content_hash(self) -> str:
        return self.policy.content_hash


def default_pack_path() -> Path:
    return Path(str(resources.files("costwarden.policies") / "packs" / "default.yml"))


def _build(doc: LocatedYaml, index: int, policy: Policy) -> LoadedPolicy:
    base = ("policies", index)
    built_detectors: list[Detector] = []
    for j, spec in enumerate(policy.filters):
        loc = base + ("filters", j)
        if spec.type not in detectors:
            raise PolicyError(doc.path, f"unknown filter type {spec.type!r}; known: {', '.join(detectors.names())}",
                              line=doc.line_of(loc + ("type",)), field=".".join(map(str, loc + ("type",))))
        cls = detectors.get(spec.type)
        if policy.resource not in cls.resource_types:
            raise PolicyError(doc.path, f"filter {spec.type!r} does not apply to resource {policy.resource!r}",
                              line=doc.line_of(loc), field=".".join(map(str, loc)))
        try:
            built_detectors.append(cls(cls.Params.model_validate(spec.params)))
        except ValidationError as exc:
            raise doc.error_from_validation(exc, loc) from None
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
    return LoadedPolicy(policy, str(doc.path), built_detectors, built_actions)


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
