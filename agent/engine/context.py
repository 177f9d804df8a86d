"""What the graph's nodes use but do not pass to each other: settings, the store, cloud clients.

LangGraph passes this as the run's `context`, read-only by convention: data one node hands to
the next travels in the graph's state. It is rebuilt by whichever process resumes an approval
thread, so nothing here has to survive a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from costwarden.agent.config import Settings
from costwarden.policies.loader import LoadedPolicy
from costwarden.state.store import Store
from costwarden.tools.aws.session import AwsClients, aws_call_log
from costwarden.tools.calls import CallLog
from costwarden.tools.inventory import Inventory
from costwarden.tools.llm.session import UsageSession
from costwarden.tools.pricing import PriceBook


def rate_budget(settings: Settings) -> Any:
    """The process's request-rate budget for `fanout.rate_limits` / `fanout.per_account_rate`, or None."""
    from costwarden.tools.rate_budget import Rules, budget_for

    f = settings.fanout
    return budget_for(settings.db_url, Rules(dict(f.rate_limits), f.per_account_rate, f.rate_burst_seconds))


@dataclass
class Providers:
    """Cloud clients, built only for the providers a sweep touches (SDK imports are costly)."""

    settings: Settings
    dry_run: bool
    _aws: AwsClients | None = None
    _gcp: Any = None
    _gateway: Any = None
    _aws_log: CallLog | None = None
    _warehouse_ledger: Any = None
    # the sweep's token usage: each configured source ingested once, read by every policy and budget
    usage: UsageSession = field(default_factory=UsageSession)
    _litellm: Any = None
    aws_base: Any = None  # a fan-out worker's base Session (tools/aws/reuse.py), shared by its jobs; None: one of its own

    @property
    def gcp(self) -> Any:
        """GcpClients for settings.gcp.projects; the Google SDK itself loads on the first call."""
        if self._gcp is None:
            from costwarden.tools.gcp.session import GcpClients
            from costwarden.tools.prometheus import GpuUtilization, PrometheusClient

            g, prom = self.settings.gcp, self.settings.prometheus
            util = None
            if prom.configured and prom.gcp_instance_label:
                key = (lambda r: r.attrs["name"]) if prom.gcp_match == "name" else (lambda r: r.attrs["id"])
                util = GpuUtilization(PrometheusClient(prom), prom.gcp_instance_label, key)
            self._gcp = GcpClients(dry_run=self.dry_run, projects=list(g.projects), endpoint_url=g.endpoint_url,
                                   regions=list(g.regions), page_size=g.page_size, timeout_s=g.timeout_seconds,
                                   utilization=util, utilization_source=g.utilization_source,
                                   monitoring=g.monitoring)
        return self._gcp

    @property
    def gateway(self) -> Any:
        """GatewayClients: the git remote holding the LiteLLM config, and GitHub (route-model)."""
        if self._gateway is None:
            from costwarden.tools.gateway.route import GatewayClients

            self._gateway = GatewayClients(self.settings.gateway, dry_run=self.dry_run)
        return self._gateway

    @property
    def aws(self) -> AwsClients:
        if self._aws is None:
            self._aws = AwsClients(dry_run=self.dry_run, endpoint_url=self.settings.aws.endpoint_url,
                                   call_log=self.aws_call_log, retries=self.settings.aws.retries,
                                   role_arns=list(self.settings.aws.accounts),
                                   organization=self.settings.aws.organization, budget=self.aws_budget,
                                   base=self.aws_base)
        return self._aws

    @property
    def aws_budget(self) -> Any:
        """The request-rate budget every AWS client of the sweep waits for (None: nothing budgeted)."""
        return rate_budget(self.settings)

    @property
    def aws_call_log(self) -> CallLog:
        """Every AWS request of this sweep, also those of the read-only clients a collector builds
        itself (Cost Explorer, always in dry-run), so the run's api_calls count them too."""
        if self._aws_log is None:
            self._aws_log = aws_call_log()
        return self._aws_log

    @property
    def warehouse_ledger(self) -> Any:
        """The bytes every billing.warehouse query of this sweep scans, against one allowance
        (billing.warehouse.max_bytes_scanned): the anomaly and budget collectors share it."""
        if self._warehouse_ledger is None:
            from costwarden.tools.billing.warehouse.runners import ScanLedger

            wh = self.settings.billing.warehouse
            self._warehouse_ledger = ScanLedger(wh.max_bytes_scanned, wh.kind) if wh is not None else None
        return self._warehouse_ledger

    @property
    def litellm(self) -> Any:
        """LiteLLMAdmin for settings.litellm_proxy: its transport refuses every update in dry-run."""
        if self._litellm is None:
            from costwarden.tools.litellm_proxy.admin import LiteLLMAdmin

            self._litellm = LiteLLMAdmin(self.settings.litellm_proxy, dry_run=self.dry_run)
        return self._litellm

    def call_logs(self) -> list[Any]:
        """The call logs of the providers this sweep actually used."""
        logs = [self._aws_log, getattr(self._aws, "call_log", None), getattr(self._gcp, "call_log", None),
                getattr(self._litellm, "call_log", None), getattr(self._gateway, "log", None)]
        return [log for i, log in enumerate(logs)  # each log once: `aws` normally shares `aws_call_log`
                if log is not None and not any(log is seen for seen in logs[:i])]

    def clients_for(self, provider: str) -> Any:
        if provider == "aws":
            return self.aws
        if provider == "gcp":
            return self.gcp
        if provider == "litellm":
            return self.litellm
        if provider == "gateway":
            return self.gateway
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
    inventory: Inventory = field(default_factory=Inventory)  # this sweep's shared reads (tools/inventory.py)
    # A fan-out job (agent/server/fanout.py) sweeps one part of a run: `record` closes the part, not the run,
    # and a retried job (`resumed`) keeps what its dead attempt stored instead of storing it twice.
    part: Any = None  # state.store.parts.PartKey
    resumed: bool = False
