"""What the graph's nodes need but must not checkpoint: settings, the store, cloud clients.

LangGraph passes this as the run's `context`; it is rebuilt by whichever process resumes a
thread, so nothing here has to survive a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.config import Settings
from policies.loader import LoadedPolicy
from state.domain import Observation
from state.store import Store
from tools.aws.session import AwsClients
from tools.pricing import PriceBook


@dataclass
class Providers:
    """Cloud clients, built only for the providers a sweep touches (SDK imports are costly)."""

    settings: Settings
    dry_run: bool
    _aws: AwsClients | None = None

    @property
    def aws(self) -> AwsClients:
        if self._aws is None:
            self._aws = AwsClients(dry_run=self.dry_run, endpoint_url=self.settings.aws.endpoint_url,
                                   role_arns=list(self.settings.aws.accounts))
        return self._aws

    def clients_for(self, provider: str) -> Any:
        if provider == "aws":
            return self.aws
        raise KeyError(f"no clients for provider {provider!r}")


@dataclass
class SweepContext:
    settings: Settings
    store: Store
    policies: dict[str, LoadedPolicy]
    providers: Providers
    prices: PriceBook
    now: datetime
    progress: Callable[[str], None] = lambda _msg: None
    # read-only streams opened by `collect` and drained by `detect`, one per policy
    streams: dict[str, Iterator[Observation]] = field(default_factory=dict)
    collect_reports: dict[str, Any] = field(default_factory=dict)
