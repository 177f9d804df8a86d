"""The detectors and actions a policy may name: YAML vocabulary and code are one list (Cloud Custodian's pattern).

Each is a class that registers itself under its YAML name when its module in policies/detectors/ or
policies/actions/ is imported; the registry stamps that name on the class (`cls.name`), so a
finding records the name the policy used.
"""

from __future__ import annotations

from typing import Any

from costwarden.state.registry import Registry


class ClassRegistry(Registry[Any]):
    """A Registry of classes that also tells each class its registered name."""

    def add(self, name: str, item: Any) -> Any:
        super().add(name, item)
        item.name = name
        return item


detectors = ClassRegistry("detector", packages=("costwarden.policies.detectors",))
actions = ClassRegistry("action", packages=("costwarden.policies.actions",))


def load_builtin() -> None:
    """Import every module of policies/detectors and policies/actions so each registers itself.

    Lookups do this on their own; a caller that lists or validates everything up front (the
    policy loader, `policies validate`) calls it to fail early on a broken module.
    """
    detectors.load_builtin()
    actions.load_builtin()
