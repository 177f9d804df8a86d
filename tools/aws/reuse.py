"""botocore objects that do not depend on the account, built once per process instead of once per client.

Why: a fan-out worker (agent/server/fanout.py) sweeps a different account in nearly every job, so
every job builds a role Session and its clients. Profiled per job (cProfile and py-spy against the
many-accounts fake), of a job's ~0.25 s of CPU botocore spent about 0.1 s on three things that are
the same for every account: a new Session registering its ~500 built-in event handlers (~16 ms), the base Session
built again per job (~16 ms more), and each client's *class*, ~700 generated methods for EC2
(~30 ms), rebuilt from the same service model for every client. The credentials, the HTTP
connection pool, the retry quota and the adaptive rate limiter stay per client, so per role: a
throttled account never spends another account's retries, and no client signs for two accounts.

What is shared, and why it is safe:
- `BaseSession`: the base credentials' Session, reused by every AwsClients of a process that asks for
  it (a worker's jobs). Its clients are still built per job (each job its own call log and dry-run
  hook); creating them is serialised under its lock, as botocore Sessions are not documented as
  thread-safe.
- `role_session`: a Session for one role whose event handlers are the base Session's (the same
  built-in and boto3 handlers, not registered again; botocore copies them into each client's own
  emitter, where per-client hooks go) and whose model loader is the base's. Its credential
  provider is the role's own: nothing credential-bearing is shared.
- `install_client_class_cache`: the generated client class per (service, API version), for the
  Sessions made here only (they all carry the same handlers, and handlers may add methods to the
  class, as boto3's do to S3's).

Each shortcut reads a botocore internal; where the internal is missing (another botocore version)
it falls back to what botocore does by default, slower but the same behaviour.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.client
import botocore.session

_OURS: weakref.WeakSet[Any] = weakref.WeakSet()  # event emitters of the Sessions made here
_CLASSES: dict[tuple[str, str], type] = {}
_CLASSES_LOCK = threading.Lock()
_INSTALLED: list[Any] = []
_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def shared_models_session() -> Any:
    """A new botocore Session whose model loader is the process's one loader.

    Why: a loader parses each service's model JSON once and keeps it; a Session of its own per
    sweep (the daemon makes one a sweep) re-parsed EC2's ~0.5 s model every time."""
    global _LOADER
    session = botocore.session.get_session()
    with _LOADER_LOCK:
        if _LOADER is None:
            _LOADER = session.get_component("data_loader")
        else:
            session.register_component("data_loader", _LOADER)
    return session


@dataclass
class BaseSession:
    """The base credentials' botocore Session and its boto3 wrapper; `lock` serialises client creation."""

    botocore_session: Any
    boto3_session: Any
    lock: Any = field(default_factory=threading.RLock)

    @classmethod
    def new(cls) -> BaseSession:
        core = shared_models_session()
        session = boto3.Session(botocore_session=core)  # registers boto3's handlers: role Sessions read them too
        mark(core)
        return cls(core, session)

    def client(self, service: str, **kwargs: Any) -> Any:
        with self.lock:
            return self.boto3_session.client(service, **kwargs)


def mark(core: Any) -> None:
    """Remember a Session made here (its clients may take a cached class)."""
    emitter = getattr(core, "_original_handler", None)
    if emitter is not None:
        _OURS.add(emitter)


def role_session(base: Any, credential_provider: Any) -> Any:
    """A botocore Session for one role: the base's handlers and model loader, the role's own credentials."""
    handlers = getattr(base, "_original_handler", None)
    if handlers is None:  # another botocore: a Session of its own, with its handlers registered again
        core = botocore.session.Session()
        _boto3_handlers(core)
    else:
        # the base's handlers themselves, not a copy: a Session's handlers are only read (each client
        # copies them into its own emitter, where the client's hooks go); nothing registers on them
        core = botocore.session.Session(event_hooks=handlers, include_builtin_handlers=False)
    core.register_component("data_loader", base.get_component("data_loader"))
    core.register_component("credential_provider", credential_provider)
    return core


def _boto3_handlers(core: Any) -> None:
    boto3.Session(botocore_session=core)  # registers boto3's default handlers on the Session, as before


def install_client_class_cache() -> bool:
    """Make botocore reuse a service's client class for the Sessions made here; False when it cannot."""
    creator = botocore.client.ClientCreator
    with _CLASSES_LOCK:
        if _INSTALLED:
            return True
        build = getattr(creator, "_create_client_class", None)
        if build is None:
            return False

        def cached_client_class(self: Any, service_name: str, service_model: Any) -> type:
            emitter = getattr(self, "_event_emitter", None)
            inner = getattr(emitter, "_emitter", emitter)  # the Session's EventAliaser wraps its emitter
            if inner is None or inner not in _OURS:
                return build(self, service_name, service_model)
            key = (service_name, str(service_model.api_version))
            cls = _CLASSES.get(key)
            if cls is None:
                cls = build(self, service_name, service_model)
                with _CLASSES_LOCK:
                    cls = _CLASSES.setdefault(key, cls)
            return cls

        creator._create_client_class = cached_client_class  # type: ignore[method-assign]
        _INSTALLED.append(build)
        return True
