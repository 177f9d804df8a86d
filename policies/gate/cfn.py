"""Instance types and counts in CloudFormation and SAM templates (YAML or JSON, `cdk.out` too).

Why a loader of its own: CloudFormation YAML uses short-form intrinsic functions (`!Ref`,
`!Sub`, `!GetAtt`, `!If`, ...) that a safe YAML loader rejects, which used to drop the whole
template to a line scan. `LOADER` accepts any local `!Tag` as an opaque `Intrinsic`, so the
literal values around it are still read; `{"Ref": "X"}` (the JSON and long form) is the same thing.

What is read, per resource (keyed `Resources.<LogicalId>` so a renamed logical id with the same
type and count is no change):
- `AWS::EC2::Instance` `InstanceType` (one instance);
- `AWS::SageMaker::EndpointConfig` `ProductionVariants[]` `InstanceType` x `InitialInstanceCount`;
- `AWS::SageMaker::NotebookInstance` `InstanceType`;
- `AWS::EKS::Nodegroup` `InstanceTypes` (the first) x `ScalingConfig.DesiredSize` (else `MinSize`);
- `AWS::AutoScaling::LaunchConfiguration` `InstanceType` and `AWS::EC2::LaunchTemplate`
  `LaunchTemplateData.InstanceType`, x the `DesiredCapacity` (else `MinSize`) of the
  `AWS::AutoScaling::AutoScalingGroup` that refers to it.
A `!Ref` to a template parameter takes the parameter's `Default` (said in a note); other
intrinsics are values decided at deploy time and are left out, like Terraform variables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from costwarden.policies.gate.setting import Setting, instance, to_int


@dataclass(frozen=True)
class Intrinsic:
    """A short-form intrinsic function (`!Ref X` -> Intrinsic("Ref", "X")): opaque, never a literal."""

    fn: str
    arg: Any


_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):  # type: ignore[misc,valid-type]
    """Safe YAML plus local tags (`!Ref`, `!Sub`, `!GetAtt`, ...) read as `Intrinsic` values."""


def _intrinsic(loader: Any, suffix: str, node: yaml.Node) -> Intrinsic:
    if isinstance(node, yaml.ScalarNode):
        arg: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        arg = loader.construct_sequence(node, deep=True)
    else:
        arg = loader.construct_mapping(node, deep=True)
    return Intrinsic(suffix, arg)


_Loader.add_multi_constructor("!", _intrinsic)
LOADER: Any = _Loader


def is_template(doc: Any) -> bool:
    """A CloudFormation/SAM template: `Resources` whose entries have an `AWS::...` `Type`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        return False
    if "AWSTemplateFormatVersion" in doc or "Transform" in doc:
        return True
    return any(isinstance(r, dict) and str(r.get("Type", "")).startswith(("AWS::", "Custom::"))
               for r in doc["Resources"].values())


def _ref(value: Any) -> str | None:
    if isinstance(value, Intrinsic) and value.fn == "Ref" and isinstance(value.arg, str):
        return value.arg
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("Ref"), str):
        return value["Ref"]
    return None


def _groups_by_target(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Launch configuration / template logical id -> properties of the group that uses it."""
    out: dict[str, dict[str, Any]] = {}
    for r in resources.values():
        if not isinstance(r, dict) or r.get("Type") != "AWS::AutoScaling::AutoScalingGroup":
            continue
        props = r.get("Properties") or {}
        lt = props.get("LaunchTemplate") or props.get("LaunchTemplateSpecification") or {}
        targets = [_ref(props.get("LaunchConfigurationName"))]
        if isinstance(lt, dict):
            targets += [_ref(lt.get("LaunchTemplateId")), _ref(lt.get("LaunchTemplateName"))]
        for t in targets:
            if t:
                out[t] = props
    return out


def template_settings(doc: dict[str, Any], find_line: Callable[..., int]) -> list[Setting]:
    """The instance settings of one template; `find_line(*needles)` places a value in the text."""
    params = doc.get("Parameters") if isinstance(doc.get("Parameters"), dict) else {}
    resources: dict[str, Any] = doc["Resources"]
    groups = _groups_by_target(resources)
    out: list[Setting] = []

    def literal(value: Any) -> tuple[str | None, tuple[str, ...]]:
        name = _ref(value)
        if name is not None:
            default = (params.get(name) or {}).get("Default") if isinstance(params.get(name), dict) else None
            if isinstance(default, (str, int)) and not isinstance(default, bool):  # a Number parameter: an int
                return str(default), (f"the default of parameter `{name}`",)
            return None, ()
        return (value, ()) if isinstance(value, str) else (None, ())

    def add(key: str, value: Any, count: int | None, count_from: str, extra: tuple[str, ...] = ()) -> None:
        lit, notes = literal(value)
        if lit is None:
            return
        s = instance(key, lit, count, find_line(lit), (*notes, *extra), count_from)
        if s is not None:
            out.append(s)

    def count_of(value: Any, name: str) -> tuple[int | None, tuple[str, ...]]:
        if value is None:
            return None, ()
        lit, notes = literal(value) if not isinstance(value, (int, str)) else (value, ())
        n = to_int(lit) if lit is not None else None
        return (n, tuple(f"{name}: {x}" for x in notes)) if n is not None else (None, (f"{name} is not a literal",))

    for logical_id, res in resources.items():
        if not isinstance(res, dict):
            continue
        rtype, props = res.get("Type"), res.get("Properties") or {}
        if not isinstance(props, dict):
            continue
        key = f"Resources.{logical_id}"
        if rtype in ("AWS::EC2::Instance", "AWS::SageMaker::NotebookInstance"):
            add(key, props.get("InstanceType"), 1, "")
        elif rtype == "AWS::SageMaker::EndpointConfig":
            for i, v in enumerate(props.get("ProductionVariants") or []):
                if not isinstance(v, dict):
                    continue
                label = v.get("VariantName") if isinstance(v.get("VariantName"), str) else i
                n, notes = count_of(v.get("InitialInstanceCount"), "InitialInstanceCount")
                add(f"{key}.ProductionVariants[{label}]", v.get("InstanceType"), n,
                    "`InitialInstanceCount`" if n is not None else "", notes)
        elif rtype == "AWS::EKS::Nodegroup":
            types = props.get("InstanceTypes")
            types = [t for t in types if isinstance(t, str)] if isinstance(types, list) else []
            scaling = props.get("ScalingConfig") if isinstance(props.get("ScalingConfig"), dict) else {}
            attr = next((a for a in ("DesiredSize", "MinSize") if a in scaling), "DesiredSize")
            n, notes = count_of(scaling.get(attr), attr)
            more = (f"{len(types)} instance types allowed ({', '.join(types)}); priced as the first",) if len(types) > 1 else ()
            if types:
                add(key, types[0], n, f"`ScalingConfig.{attr}`" if n is not None else "", (*notes, *more))
        elif rtype in ("AWS::AutoScaling::LaunchConfiguration", "AWS::EC2::LaunchTemplate"):
            value = (props.get("InstanceType") if rtype.endswith("LaunchConfiguration")
                     else (props.get("LaunchTemplateData") or {}).get("InstanceType"))
            group = groups.get(str(logical_id))
            n, notes, src = None, (), ""
            if group is not None:
                for attr in ("DesiredCapacity", "MinSize"):
                    if attr in group:
                        n, notes = count_of(group[attr], attr)
                        src = f"the Auto Scaling group's `{attr}`" if n is not None else ""
                        break
            else:
                notes = ("no Auto Scaling group refers to it in this template",)
            add(key, value, n, src, notes)
    return out
