"""The cloud permissions a policy set needs, from what its classes declare (issue #20, item 3).

Every filter (detector), action and collector declares the permissions it uses, AWS IAM actions as
`service:Action` and GCP IAM permissions as `service.resource.verb`, in one tuple (`permissions`):
a class serving both clouds lists both, and a policy takes those of its resource type's cloud.
Nothing here is kept by hand beside the code, so `costwarden policies permissions`, the docs'
tables and the test that sweeps against moto read the same declarations and cannot drift apart.

Why a policy set's permissions and not one fixed list: least privilege. A read-only audit of the
EC2 policies needs two AWS reads; a live daemon with the estate pack needs the mutating calls of
the actions it is allowed to take, and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from costwarden.policies.loader import LoadedPolicy

# Permissions that follow from settings, not from a policy: the base identity's, for the features on.
SETTINGS_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "aws.accounts": ("sts:AssumeRole",),
    "aws.organization": ("organizations:DescribeOrganization", "organizations:ListAccounts",
                         "sts:AssumeRole", "sts:GetCallerIdentity"),
    "pricing.source: price-list-api": ("pricing:GetProducts",),
    "aws.cost_explorer (billing)": ("ce:GetCostAndUsage",),
    "billing paths on s3://": ("s3:GetObject", "s3:ListBucket"),
}
GCP_READ_VERBS = ("get", "list", "aggregatedList")


def cloud_of(permission: str) -> str:
    """'ec2:StopInstances' -> 'aws'; 'compute.instances.stop' -> 'gcp'."""
    return "aws" if ":" in permission else "gcp"


def is_read(permission: str) -> bool:
    """Whether the permission only reads (what a dry-run audit needs), by the rule the dry-run hook uses."""
    if cloud_of(permission) == "aws":
        from costwarden.tools.aws.session import is_mutating

        service, _, action = permission.partition(":")
        return not is_mutating(service, action)
    return permission.rsplit(".", 1)[-1].startswith(GCP_READ_VERBS)


@dataclass
class Needed:
    """A policy set's permissions by cloud, each with the classes that need it (for the docs and errors)."""

    by_permission: dict[str, set[str]] = field(default_factory=dict)

    def add(self, permissions: Iterable[str], why: str, cloud: str) -> None:
        for p in permissions:
            if cloud_of(p) == cloud:
                self.by_permission.setdefault(p, set()).add(why)

    def cloud(self, cloud: str, *, read_only: bool = False) -> list[str]:
        return sorted(p for p in self.by_permission if cloud_of(p) == cloud and (is_read(p) or not read_only))


def provider_of(resource_type: str) -> str:
    """The cloud whose permissions a resource type's policies need: 'aws.ec2' -> 'aws'; 'k8s.gpu-node' -> 'k8s'."""
    return resource_type.split(".", 1)[0]


def needed(policies: Iterable[LoadedPolicy], *, settings: Iterable[str] = ()) -> Needed:
    """What `policies` need: each one's collector, filters and actions, in its resource type's cloud;
    plus the SETTINGS_PERMISSIONS of the features named in `settings`."""
    from costwarden.tools.collectors import get_collector

    out = Needed()
    for lp in policies:
        rtype = lp.policy.resource
        cloud = provider_of(rtype)
        out.add(declared(get_collector(rtype)), f"resource {rtype}", cloud)
        for d in lp.detectors:
            out.add(declared(d), f"filter {d.name}", cloud)
        for a in lp.actions:
            out.add(declared(a), f"action {a.name}", cloud)
    for feature in settings:
        for p in SETTINGS_PERMISSIONS[feature]:
            out.by_permission.setdefault(p, set()).add(f"setting {feature}")
    return out


def declared(thing: Any) -> tuple[str, ...]:
    """A class's (or collector's) declared permissions; a clear error naming it when it declares none."""
    perms = getattr(thing, "permissions", None)
    if perms is None:
        name = getattr(thing, "name", None) or getattr(thing, "resource_type", None) or repr(thing)
        raise TypeError(f"{name} declares no permissions (set `permissions = (...)`, () when it calls no API)")
    return tuple(perms)


def settings_features(settings: Any) -> list[str]:
    """The SETTINGS_PERMISSIONS features a configuration turns on."""
    on = []
    aws, billing = settings.aws, settings.billing
    if aws.accounts:
        on.append("aws.accounts")
    if aws.organization is not None:
        on.append("aws.organization")
    if settings.pricing.source == "price-list-api":
        on.append("pricing.source: price-list-api")
    if aws.cost_explorer.enabled:
        on.append("aws.cost_explorer (billing)")
    paths = [*billing.focus_paths, *billing.usage_paths]
    if any(str(p).startswith("s3://") for p in paths):
        on.append("billing paths on s3://")
    return on


def iam_policy(need: Needed, *, read_only: bool = False) -> dict[str, Any]:
    """An IAM policy document (2012-10-17): the reads in one statement, the actions' writes in another,
    so a dry-run deployment can attach the first alone."""
    perms = need.cloud("aws", read_only=read_only)
    statements = []
    for sid, group in (("CostwardenRead", [p for p in perms if is_read(p)]),
                       ("CostwardenActions", [p for p in perms if not is_read(p)])):
        if group:
            statements.append({"Sid": sid, "Effect": "Allow", "Action": group, "Resource": "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def gcp_role(need: Needed, *, read_only: bool = False, title: str = "Costwarden") -> str:
    """A GCP custom role definition, the YAML `gcloud iam roles create ID --project P --file F` reads."""
    import yaml

    doc = {"title": title, "description": "Least-privilege permissions of a Costwarden policy set "
                                          "(costwarden policies permissions --cloud gcp).",
           "stage": "GA", "includedPermissions": need.cloud("gcp", read_only=read_only)}
    return yaml.safe_dump(doc, sort_keys=False)


def render_iam(need: Needed, *, read_only: bool = False) -> str:
    return json.dumps(iam_policy(need, read_only=read_only), indent=2) + "\n"
