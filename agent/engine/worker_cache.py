"""What a fan-out worker process builds once and every job of it reuses.

Why: a worker sweeps a different account in nearly every job, and each job used to build, besides its
account's role Session and clients, things that depend on no account at all: the compiled sweep
graph (~25 ms of LangGraph compiling the same declaration) and the base credentials' botocore
Session (~16 ms). At ~0.25 s of CPU per job that capped a worker at ~4 jobs a second whatever its
concurrency, so a second worker on two cores added little (docs/deploy/thousands-of-accounts.md).

Kept per job, on purpose: the role's Session, credentials and clients (each account signs with its
own keys; each client's retry quota and rate limiter see one account's throttling only), the call
log, the dry-run hook, the price book (its Price List calls go to the job's log), the inventory.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from costwarden.tools.aws.reuse import BaseSession, install_client_class_cache


@dataclass
class WorkerCache:
    """One per worker process; `sweep_part` takes it (None: build everything per job, as a test may)."""

    aws_base: BaseSession = field(default_factory=BaseSession.new)
    _graph: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        install_client_class_cache()

    @property
    def graph(self) -> Any:
        """The compiled sweep graph: stateless between runs (each stream gets its own inputs and context)."""
        with self._lock:
            if self._graph is None:
                from costwarden.agent.engine.graph import build_graph

                self._graph = build_graph()
            return self._graph
