"""boto3 clients with Costwarden's guard rails built in.

Every client gets a botocore `before-call` hook. In dry-run the hook refuses any operation
that is not a read, so the request never leaves the process: dry-run is enforced below our
code, not by remembering to check a flag. One boto3 Session serves all regions (a Session per
account/region pair costs ~23 MB each); clients are cached per (service, region).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config

from tools.errors import DryRunViolation

READ_PREFIXES = ("Describe", "List", "Get", "Search", "Lookup", "Head", "Query", "Scan", "Select",
                 "BatchGet", "Estimate", "Preview")
# Calls that change nothing in the account although their names do not say so.
READ_OPERATIONS = frozenset({"sts.AssumeRole", "sts.AssumeRoleWithWebIdentity", "sts.DecodeAuthorizationMessage"})


def is_mutating(service: str, operation: str) -> bool:
    if f"{service}.{operation}" in READ_OPERATIONS:
        return False
    return not operation.startswith(READ_PREFIXES)


class CallLog:
    """Counts every API call by service.operation (for /metrics, benchmarks and tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def add(self, name: str, refused: bool = False) -> None:
        with self._lock:
            (self.refused if refused else self.calls)[name] += 1

    def mutating(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if is_mutating(*k.split(".", 1))}


class AwsClients:
    def __init__(self, *, dry_run: bool, endpoint_url: str | None = None, call_log: CallLog | None = None,
                 max_attempts: int = 2) -> None:
        self.dry_run = dry_run
        self.endpoint_url = endpoint_url
        self.call_log = call_log or CallLog()
        self._session = boto3.Session()
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                              connect_timeout=5, read_timeout=60, user_agent_extra="costwarden/0.1")

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            c = self._clients.get(key)
            if c is None:
                kwargs: dict[str, Any] = {"region_name": region, "config": self._config}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                c = self._session.client(service, **kwargs)
                c.meta.events.register("before-call", self._before_call)
                self._clients[key] = c
            return c

    def _before_call(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        name = f"{service}.{model.name}"
        if self.dry_run and is_mutating(service, model.name):
            self.call_log.add(name, refused=True)
            raise DryRunViolation(service, model.name)
        self.call_log.add(name)

    def account_id(self, region: str) -> str:
        return str(self.client("sts", region).get_caller_identity()["Account"])
