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


def load_builtin() -> None:
    """Import the built-in detectors and actions so they register themselves."""
    import policies.actions.builtin  # noqa: F401
    import policies.detectors  # noqa: F401
