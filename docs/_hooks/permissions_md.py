"""The permissions reference page, generated from what the filters, actions and collectors declare
(costwarden.policies.permissions): the tables and the shipped packs' IAM documents cannot drift
from the code, and a test checks the declarations against the calls a sweep makes."""

from __future__ import annotations

import json
from typing import Any


def _codes(perms: list[str]) -> str:
    return ", ".join(f"`{p}`" for p in perms) or "none"


def _split(perms: tuple[str, ...]) -> tuple[list[str], list[str]]:
    from costwarden.policies.permissions import cloud_of

    return sorted(p for p in perms if cloud_of(p) == "aws"), sorted(p for p in perms if cloud_of(p) == "gcp")


def render(detectors: list[tuple[str, type]], actions: list[tuple[str, type]], collectors: list[tuple[str, Any]],
           packs: dict[str, list[Any]]) -> str:
    from costwarden.policies.permissions import SETTINGS_PERMISSIONS, declared, iam_policy, is_read, needed

    out = [
        "# Permissions reference\n",
        "Generated from the permissions every filter, action and collector declares "
        "(`costwarden.policies.permissions`). A policy needs those of its resource type's collector, its "
        "filters and its actions, in its resource type's cloud: an `aws.*` policy the AWS IAM actions, a "
        "`gcp.*` policy the GCP permissions. A test sweeps the shipped packs against moto, executes the "
        "actions they plan, and fails on any call that was not declared.\n",
        "Print the least-privilege permissions of your own policy set:\n",
        "```bash\n"
        "costwarden policies permissions -p policies.yml > costwarden-iam.json   # IAM policy document\n"
        "costwarden policies permissions -p policies.yml --read-only            # audit / dry-run only\n"
        "costwarden policies permissions -p policies.yml -c costwarden.yml      # + what the settings turn on\n"
        "costwarden policies permissions -p policies.yml --cloud gcp > role.yml # GCP custom role\n"
        "aws iam create-policy --policy-name costwarden --policy-document file://costwarden-iam.json\n"
        "gcloud iam roles create costwarden --project PROJECT --file role.yml\n"
        "```\n",
        "The IAM document has two statements: `CostwardenRead` (every read: enough for `audit` and a "
        "dry-run daemon) and `CostwardenActions` (the writes of the policies' actions). GCP permissions "
        "are printed separately, as a custom role definition, because they are granted in another cloud.\n",
        "## By resource type {#resource-types}\n",
        "What the collector reads to inventory a policy's resources.\n",
        "| Resource type | AWS | GCP |", "|---|---|---|",
    ]
    for name, spec in collectors:
        aws, gcp = _split(declared(spec))
        out.append(f"| `{name}` | {_codes(aws)} | {_codes(gcp)} |")
    out += ["", "## By filter {#filters}\n",
            "Filters judge what the collector read; these are the reads their data needs (metrics).\n",
            "| Filter | AWS | GCP |", "|---|---|---|"]
    for name, cls in detectors:
        aws, gcp = _split(declared(cls))
        out.append(f"| [`{name}`](policies.md#detector-{name}) | {_codes(aws)} | {_codes(gcp)} |")
    out += ["", "## By action {#actions}\n",
            "Each action reads the resource, changes it, and reads it back.\n",
            "| Action | AWS reads | AWS writes | GCP reads | GCP writes |", "|---|---|---|---|---|"]
    for name, cls in actions:
        aws, gcp = _split(declared(cls))
        out.append(f"| [`{name}`](policies.md#action-{name}) | {_codes([p for p in aws if is_read(p)])} | "
                   f"{_codes([p for p in aws if not is_read(p)])} | {_codes([p for p in gcp if is_read(p)])} | "
                   f"{_codes([p for p in gcp if not is_read(p)])} |")
    out += ["", "## By setting {#settings}\n",
            "Reads the base identity makes because of a setting, whatever the policies "
            "(`costwarden policies permissions -c CONFIG` adds those of your configuration).\n",
            "| Setting | Permissions |", "|---|---|"]
    for feature, perms in SETTINGS_PERMISSIONS.items():
        out.append(f"| `{feature}` | {_codes(sorted(perms))} |")
    out += ["", "## The shipped packs {#packs}\n"]
    for pack, policies in packs.items():
        doc = iam_policy(needed(policies))
        gcp = needed(policies).cloud("gcp")
        out += [f"### `{pack}`\n", "```json", json.dumps(doc, indent=2), "```\n"]
        if gcp:
            out.append(f"GCP (`--cloud gcp`): {_codes(gcp)}.\n")
    return "\n".join(out)
