"""Name -> item registries: the one implementation behind detectors, actions, tools and collectors.

Each builtin item registers itself when its module is imported (Cloud Custodian's pattern), so the
names a policy may use and the code that serves them are one list. A registry imports its builtin
modules on the first lookup rather than when it is created: importing a registry stays cheap, and
a module that needs a heavy SDK (the GCP tools) is paid for only by a process that looks a name up.

It lives in state/ because every layer may import state/ (DESIGN.md: tools never import agent,
policies import state for types), and it holds no cloud or policy knowledge of its own.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from costwarden.state.errors import CostwardenError

T = TypeVar("T")


class DuplicateName(RuntimeError):
    """Two modules registered the same name: a programming error, found at import time."""


class UnknownName(CostwardenError, KeyError):
    """A name no registered item has; the message lists the known ones.

    A KeyError, so a caller that asks "is it there?" with `except KeyError` keeps working, and a
    CostwardenError, so the CLI prints the one line instead of a traceback.
    """

    def __str__(self) -> str:  # KeyError's own __str__ would print the message quoted
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Items by name. `modules` are imported, and every public module of each of `packages`, before
    the first lookup: importing them is what registers the builtin items."""

    def __init__(self, kind: str, *, modules: Sequence[str] = (), packages: Sequence[str] = ()) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._modules = tuple(modules)
        self._packages = tuple(packages)
        self._loaded = not (self._modules or self._packages)
        self._loading = False
        self._lock = threading.RLock()

    # -- registering ---------------------------------------------------------------------------
    def add(self, name: str, item: T) -> T:
        """Register `item` under `name`; a second item of the same name is an error, never a silent
        replacement (two detectors answering to one YAML name would make policies ambiguous)."""
        if name in self._items:
            raise DuplicateName(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """The decorator form of `add`."""

        def deco(item: T) -> T:
            return self.add(name, item)

        return deco

    # -- looking up ----------------------------------------------------------------------------
    def get(self, name: str) -> T:
        self.load_builtin()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        self.load_builtin()
        return name in self._items

    def names(self) -> list[str]:
        self.load_builtin()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self.load_builtin()
        return sorted(self._items.items())

    def load_builtin(self) -> None:
        """Import the builtin modules once. Another thread waits until they are all registered; the
        importing thread itself, when a module looks a name up while loading, sees what is there so
        far instead of starting the import again."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for module in self._modules:
                    importlib.import_module(module)
                for package in self._packages:
                    pkg = importlib.import_module(package)
                    for mod in pkgutil.iter_modules(pkg.__path__):
                        if not mod.name.startswith("_"):
                            importlib.import_module(f"{package}.{mod.name}")
                self._loaded = True
            finally:
                self._loading = False
