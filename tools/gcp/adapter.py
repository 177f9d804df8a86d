"""The requests adapter that guards google-cloud-compute's REST transport (tools/gcp/session.py).

Its own module so that `requests` loads with the first GCP client, not with the collector and
tool registries every sweep imports.
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter

from costwarden.tools.calls import CallLog
from costwarden.tools.errors import DryRunViolation
from costwarden.tools.gcp.session import READ_METHODS, operation_name


class GuardedAdapter(HTTPAdapter):
    """A requests adapter that refuses mutating HTTP methods in dry-run, before anything is sent."""

    def __init__(self, *, dry_run: bool, call_log: CallLog) -> None:
        super().__init__(max_retries=0)
        self.dry_run = dry_run
        self.call_log = call_log

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        method = (request.method or "GET").upper()
        name = operation_name(method, request.url or "")
        if self.dry_run and method not in READ_METHODS:
            self.call_log.add(name, refused=True)
            raise DryRunViolation("compute", name.split(".", 1)[1])
        self.call_log.add(name)
        return super().send(request, *args, **kwargs)
