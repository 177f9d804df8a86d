"""Name -> class registries, so the YAML vocabulary and the code are one list (Cloud Custodian's pattern)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._items:
                raise RuntimeError(f"{self.kind} '{name}' registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return deco

    def get(self, name: str) -> type[T] | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, type[T]]]:
        return sorted(self._items.items())


detectors: Registry = Registry("detector")
actions: Registry = Registry("action")


def _import_all(package: str) -> None:
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name != "base":
            importlib.import_module(f"{package}.{mod.name}")


def load_builtin() -> None:
    """Import every module of policies/detectors and policies/actions so each registers itself."""
    _import_all("costwarden.policies.detectors")
    _import_all("costwarden.policies.actions")
