"""One sweep's token usage: every policy, budget and report of the sweep reads one ingest.

A sweep runs several readers of the same usage (the feature and tier collectors, the LLM budgets,
each configured policy). Each used to build its own `UsageLog`, and each of those synced the files
(a `stat` apiece when nothing changed) and queried LiteLLM's database again. The session built at
the start of a sweep (agent/engine/context.py `Providers.usage`) builds the `UsageLog` of each
configuration once, keeps a failure as the same one-line error for every reader, and at the end
of the sweep lets go of the store file, so a CLI run beside the daemon can open it between sweeps.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.usage import UsageLog, open_usage, release_stores

if TYPE_CHECKING:
    from costwarden.tools.billing.settings import BillingSettings


class UsageSession:
    """The `UsageLog` of each billing configuration a sweep reads, built on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[tuple[Any, ...], UsageLog | BillingInputError] = {}
        self.ingests = 0  # UsageLogs built (files synced, databases read): one per configuration

    def open(self, billing: BillingSettings) -> UsageLog:
        url = billing.litellm_database_url.get_secret_value() if billing.litellm_database_url else None
        key = (tuple(map(str, billing.usage_paths)), billing.usage_store, url, billing.litellm_database_source)
        with self._lock:  # policies may be drained concurrently: the second waits for the first ingest
            got = self._logs.get(key)
            if got is None:
                self.ingests += 1
                try:
                    got = open_usage(billing)
                except BillingInputError as exc:
                    got = exc
                self._logs[key] = got
        if isinstance(got, BillingInputError):
            raise BillingInputError(str(got))
        return got

    def close(self) -> None:
        """End of the sweep: forget the logs, release the store files."""
        with self._lock:
            self._logs.clear()
        release_stores()


@dataclass(frozen=True)
class UsageInputs:
    """What the token-usage collectors read: the `billing:` settings and the sweep's session."""

    billing: BillingSettings
    session: UsageSession | None = None

    def open(self) -> UsageLog:
        return self.session.open(self.billing) if self.session is not None else open_usage(self.billing)


def usage_inputs(source: Any) -> UsageInputs:
    """A collector's input as UsageInputs (outside a sweep it is just the billing settings)."""
    return source if isinstance(source, UsageInputs) else UsageInputs(source)
