"""Re-route one feature in a LiteLLM router config (the proxy's `config.yaml`), as text in, text out.

Why edit in place: the change goes to a person as a diff and then into a repository people edit
by hand, so comments, indentation, key order and quoting must survive. ruamel.yaml's round-trip
loader gives each value's line and column; only those scalars are rewritten in the original text
(a re-dump would re-indent the whole file), and the result is parsed again to check that it says
what was meant. The diff shows the model lines that change and nothing else. Pure: no file or
network access here.

A feature reaches its model in one of two ways LiteLLM's Router resolves by name:
- `router_settings.model_group_alias: {helpdesk: gpt-4o}` (or `{helpdesk: {model: gpt-4o}}`): the
  alias is pointed at the model group of the small model, which must exist in `model_list`;
- a `model_list` group named after the feature (`model_name: helpdesk`): each of its deployments
  whose `litellm_params.model` is the flagship gets the small model, keeping its provider prefix
  (`openai/gpt-4o` -> `openai/gpt-4o-mini`) and every other parameter.
A feature that only appears as a deployment tag (tag-based routing) is refused with a one-line
error: moving a tag between deployments is not implemented.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from costwarden.tools.errors import ToolError


class GatewayConfigError(ToolError):
    """The gateway config is missing, not YAML, not a LiteLLM config, or does not route the feature."""


@dataclass(frozen=True)
class Route:
    from_model: str
    to_model: str


@dataclass(frozen=True)
class Rerouted:
    text: str  # the whole new file
    changes: list[dict[str, str]]  # {"where", "from", "to"} per edited value, in file order
    already: bool  # the feature already reaches the small model(s): nothing to change


def _yaml() -> Any:
    from ruamel.yaml import YAML

    return YAML()  # round-trip: every node keeps its line and column


def load_config(text: str, path: str) -> Any:
    """The config's document; a one-line GatewayConfigError naming `path` when it is not a LiteLLM config."""
    from ruamel.yaml.error import YAMLError

    try:
        doc = _yaml().load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise GatewayConfigError(f"gateway config {path}: not valid YAML{where}: {problem}") from None
    if not isinstance(doc, dict):
        found = "an empty file" if doc is None else "a list" if isinstance(doc, list) else "a single value"
        raise GatewayConfigError(f"gateway config {path}: expected a mapping with `model_list`, found {found}")
    if not isinstance(doc.get("model_list"), list):
        raise GatewayConfigError(f"gateway config {path}: no `model_list` list (not a LiteLLM router config)")
    for i, entry in enumerate(doc["model_list"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("litellm_params"), dict):
            raise GatewayConfigError(f"gateway config {path}: model_list[{i}] has no `litellm_params` mapping")
    return doc


def same_model(deployed: str, model: str) -> bool:
    """`openai/gpt-4o` is `gpt-4o`: usage logs name the model without LiteLLM's provider prefix."""
    deployed, model = str(deployed), str(model)
    return deployed == model or deployed.rsplit("/", 1)[-1] == model.rsplit("/", 1)[-1]


def with_prefix(deployed: str, target: str) -> str:
    """The target model under the deployed model's provider prefix, unless the target names its own."""
    if "/" in target or "/" not in deployed:
        return target
    return deployed.rsplit("/", 1)[0] + "/" + target


def _group(doc: Any, name: str) -> list[Any]:
    return [e for e in doc["model_list"] if str(e.get("model_name")) == name]


def _target_group(doc: Any, target: str, path: str, feature: str) -> str:
    """The model group the alias should name: one called `target`, else one whose every deployment runs it."""
    if _group(doc, target):
        return target
    for entry in doc["model_list"]:
        name = str(entry.get("model_name"))
        deployments = _group(doc, name)
        if all(same_model(d["litellm_params"].get("model", ""), target) for d in deployments):
            return name
    raise GatewayConfigError(f"gateway config {path}: feature {feature!r} is an alias, but no model_list group "
                             f"serves {target}; add one (model_name: {target}) first")


def _alias(doc: Any, feature: str) -> tuple[Any, Any] | None:
    """(the mapping holding the alias value, its key) when router_settings.model_group_alias names the feature."""
    aliases = (doc.get("router_settings") or {}).get("model_group_alias") if isinstance(
        doc.get("router_settings"), dict) else None
    if not isinstance(aliases, dict) or feature not in aliases:
        return None
    value = aliases[feature]
    if isinstance(value, dict):  # {model: gpt-4o, hidden: true}
        return value, "model"
    return aliases, feature


def reroute(text: str, path: str, feature: str, routes: list[Route]) -> Rerouted:
    """Point `feature` from each route's flagship at its small model; GatewayConfigError (one line) otherwise."""
    doc = load_config(text, path)
    changes: list[dict[str, str]] = []
    edits: list[tuple[int, int, str, str]] = []
    already = 0
    alias = _alias(doc, feature)
    for route in routes:
        if alias is not None:
            holder, key = alias
            current = str(holder[key])
            group = _group(doc, current)
            runs = [str(d["litellm_params"].get("model", "")) for d in group]
            if any(same_model(m, route.to_model) for m in runs) or same_model(current, route.to_model):
                already += 1
                continue
            if not (same_model(current, route.from_model) or any(same_model(m, route.from_model) for m in runs)):
                raise GatewayConfigError(f"gateway config {path}: feature {feature!r} is an alias of {current!r}, "
                                         f"which does not run {route.from_model}")
            target = _target_group(doc, route.to_model, path, feature)
            edits.append(_at(holder, key, current, target, path))
            changes.append({"where": f"router_settings.model_group_alias.{feature}", "from": current, "to": target})
            continue
        group = _group(doc, feature)
        if not group:
            tagged = any(feature in (e["litellm_params"].get("tags") or []) for e in doc["model_list"])
            if tagged:
                raise GatewayConfigError(f"gateway config {path}: feature {feature!r} is routed by tag "
                                         "(litellm_params.tags); tag-based routing is not changed automatically: "
                                         "give the feature a model_group_alias or its own model_name")
            raise GatewayConfigError(f"gateway config {path}: feature {feature!r} not found (no model_list "
                                     "model_name and no router_settings.model_group_alias entry of that name)")
        hits = [d for d in group if same_model(d["litellm_params"].get("model", ""), route.from_model)]
        if not hits:
            if all(same_model(d["litellm_params"].get("model", ""), route.to_model) for d in group):
                already += 1
                continue
            runs = ", ".join(sorted({str(d["litellm_params"].get("model", "")) for d in group}))
            raise GatewayConfigError(f"gateway config {path}: feature {feature!r} runs {runs}, "
                                     f"not {route.from_model}")
        for d in hits:
            old = str(d["litellm_params"]["model"])
            new = with_prefix(old, route.to_model)
            edits.append(_at(d["litellm_params"], "model", old, new, path))
            changes.append({"where": f"model_list[model_name={feature}].litellm_params.model", "from": old,
                            "to": new})
    if not changes:
        return Rerouted(text, [], already=already > 0)
    new_text = _patch(text, edits, path)
    check = load_config(new_text, path)  # the edit must say exactly what was meant
    for (line, col, old, new), change in zip(edits, changes):
        if change["where"].startswith("router_settings"):
            got = _alias(check, feature)
            value = str(got[0][got[1]]) if got else None
        else:
            value = next((str(d["litellm_params"]["model"]) for d in _group(check, feature)
                          if str(d["litellm_params"]["model"]) == new), None)
        if value != new:
            raise GatewayConfigError(f"gateway config {path}: line {line + 1}: cannot rewrite {old!r} in place")
    return Rerouted(new_text, changes, already=False)


def _at(holder: Any, key: Any, old: str, new: str, path: str) -> tuple[int, int, str, str]:
    """(line, column, old, new) of the scalar `holder[key]`, from ruamel.yaml's position records."""
    try:
        line, col = holder.lc.value(key)
    except (AttributeError, KeyError, TypeError):
        raise GatewayConfigError(f"gateway config {path}: cannot locate the value of {key!r}") from None
    return line, col, old, new


def _patch(text: str, edits: list[tuple[int, int, str, str]], path: str) -> str:
    """Replace each scalar where it stands (plain, 'single' or "double" quoted); everything else is kept."""
    lines = text.splitlines(keepends=True)
    for line, col, old, new in sorted(edits, reverse=True):  # right to left: earlier columns stay valid
        src = lines[line]
        rest = src[col:]
        quote = rest[:1] if rest[:1] in ("'", '"') else ""
        token = f"{quote}{old}{quote}"
        if not rest.startswith(token):
            raise GatewayConfigError(f"gateway config {path}: line {line + 1}: {old!r} is not a plain or quoted "
                                     "scalar there (an anchor, a tag or a multi-line value); edit it by hand")
        lines[line] = src[:col] + f"{quote}{new}{quote}" + rest[len(token):]
    return "".join(lines)


def unified_diff(old: str, new: str, path: str) -> str:
    """`git diff`-style text of the change, the form the approval message shows."""
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}", n=2))
