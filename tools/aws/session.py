"""boto3 clients with Costwarden's guard rails built in.

Every client gets a botocore `before-call` hook. In dry-run the hook refuses any operation
that is not a read, so the request never leaves the process: dry-run is enforced below our
code, not by remembering to check a flag. One boto3 Session serves all regions (a Session per
account/region pair costs ~23 MB each); clients are cached per (service, region, role).
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.config import Config

from costwarden.tools.aws.assume import AssumedRole, account_of_arn
from costwarden.tools.aws.retry import count_retries, error_code, retry_config
from costwarden.tools.aws.reuse import BaseSession, install_client_class_cache
from costwarden.tools.aws.settings import OrganizationSettings, RetrySettings
from costwarden.tools.calls import CallLog
from costwarden.tools.errors import DryRunViolation
from costwarden.tools.rate_budget import RateBudget

READ_PREFIXES = ("Describe", "List", "Get", "Search", "Lookup", "Head", "Query", "Scan", "Select",
                 "BatchGet", "Estimate", "Preview")
# Calls that change nothing in the account although their names do not say so.
READ_OPERATIONS = frozenset({"sts.AssumeRole", "sts.AssumeRoleWithWebIdentity", "sts.DecodeAuthorizationMessage"})


def is_mutating(service: str, operation: str) -> bool:
    if f"{service}.{operation}" in READ_OPERATIONS:
        return False
    return not operation.startswith(READ_PREFIXES)


def aws_call_log() -> CallLog:
    """Calls named `service.Operation`."""
    return CallLog(lambda name: is_mutating(*name.split(".", 1)))


def budget_sends(client: Any, budget: RateBudget, account: str) -> None:
    """Wait for the budget before each request this client sends: `before-send` fires once per HTTP
    attempt, so botocore's retries are budgeted too, and the wait is per (operation, account) key:
    a client over its budget sleeps in its own thread while other accounts' clients go on."""
    service = client.meta.service_model.service_name

    def before_send(event_name: str = "", **_: Any) -> None:
        budget.wait_for(service, event_name.rsplit(".", 1)[-1], account)
        # returning None lets botocore send the request

    client.meta.events.register("before-send", before_send)


class AwsClients:
    """One boto3 Session for every account and region; clients cached per (service, region, role).

    With `role_arns` each account is reached by an STS AssumeRole from the base credentials. Its
    credentials are botocore's own refreshable kind (assumed on first use, renewed by botocore
    before they expire), held by a per-role Session that shares the base Session's model loader
    (a Session per account with its own loader would cost ~23 MB each). With `organization` the
    accounts are listed from AWS Organizations once per instance (one sweep) and a role is assumed
    in each. `accounts()` lists the per-account views collectors iterate over. Every client gets
    the same botocore retry configuration (`retries`) and counts its retries in `call_log`.
    """

    def __init__(self, *, dry_run: bool, endpoint_url: str | None = None, call_log: CallLog | None = None,
                 retries: RetrySettings | None = None, role_arns: list[str] | None = None,
                 role_session_name: str = "costwarden", organization: OrganizationSettings | None = None,
                 budget: RateBudget | None = None, base: BaseSession | None = None) -> None:
        self.dry_run = dry_run
        self.budget = budget  # the shared request-rate budget (tools/rate_budget.py), waited for before each send
        self.endpoint_url = endpoint_url
        self.call_log = call_log or aws_call_log()
        self.role_arns = list(role_arns or [])
        self.role_session_name = role_session_name
        self.organization = organization
        self._org_views: list[AccountClients | AwsClients | UnlistedAccounts] | None = None
        self._org_lock = threading.Lock()
        self._identity: dict[str, Any] | None = None  # the base credentials' GetCallerIdentity, asked once
        self._identity_lock = threading.Lock()  # one caller asks; the others wait for its answer
        install_client_class_cache()
        self._base = base or BaseSession.new()  # a worker passes its process's one (tools/aws/reuse.py)
        self.botocore_session = self._base.botocore_session
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._roles: dict[str, AssumedRole] = {}
        self._lock = threading.RLock()
        self._config = Config(retries=retry_config(retries), connect_timeout=5, read_timeout=60,
                              user_agent_extra="costwarden/0.1")

    def client(self, service: str, region: str, *, role_arn: str | None = None) -> Any:
        key = (service, region, role_arn)
        role = self._role(role_arn, region) if role_arn else None
        if role is not None:
            role.credentials()  # the first AssumeRole, made before the lock below is taken
        with self._lock:
            c = self._clients.get(key)
            if c is None:
                kwargs: dict[str, Any] = {"region_name": region, "config": self._config}
                if self.endpoint_url:
                    kwargs["endpoint_url"] = self.endpoint_url
                c = role.session.create_client(service, **kwargs) if role is not None else self._base.client(
                    service, **kwargs)
                c.meta.events.register("before-call", self._before_call)
                count_retries(c, self.call_log)
                if self.budget is not None:
                    budget_sends(c, self.budget, account_of_arn(role_arn) if role_arn else "default")
                self._clients[key] = c
            return c

    def _role(self, role_arn: str, region: str) -> AssumedRole:
        """The role's Session (built once; the role is assumed when its first client is built)."""
        with self._lock:
            role = self._roles.get(role_arn)
            if role is None:
                role = AssumedRole(self, role_arn, region)
                self._roles[role_arn] = role
            return role

    def _before_call(self, model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        name = f"{service}.{model.name}"
        if self.dry_run and is_mutating(service, model.name):
            self.call_log.add(name, refused=True)
            raise DryRunViolation(service, model.name)
        self.call_log.add(name)

    def account_id(self, region: str) -> str:
        """The base credentials' account (GetCallerIdentity, retried by botocore like every other call)."""
        return str(self.caller_identity(region)["Account"])

    def caller_identity(self, region: str) -> dict[str, Any]:
        """GetCallerIdentity, asked once per instance (one sweep): every policy of the sweep, and the
        organization listing, share the answer instead of asking STS again (issue #20: 8 calls, now 1).
        A failure is not kept, so the next caller asks again and reports its own error."""
        with self._identity_lock:
            if self._identity is None:
                self._identity = dict(self.client("sts", region).get_caller_identity())
            return self._identity

    def accounts(self) -> list[AccountClients | AwsClients | UnlistedAccounts]:
        """What a sweep iterates over: one view per configured role and organization account, or the
        base credentials' account when neither is configured."""
        if not self.role_arns and self.organization is None:
            return [self]
        views: list[AccountClients | AwsClients | UnlistedAccounts] = [
            AccountClients(self, arn) for arn in self.role_arns]
        known = {account_of_arn(arn) for arn in self.role_arns}
        for v in self._organization_views():
            if not isinstance(v, AccountClients) or account_of_arn(v.role_arn) not in known:
                views.append(v)
        return views

    def _organization_views(self) -> list[AccountClients | AwsClients | UnlistedAccounts]:
        """The organization's selected accounts, listed once: the base credentials' own account is
        reached directly (no role to assume into itself), every other through `role_name`. A listing
        failure becomes one view that reports it, so the collectors' per-account error path tells it."""
        if self.organization is None:
            return []
        from costwarden.tools.aws.organizations import ORGANIZATIONS_REGION, OrganizationError, discover, role_arn

        with self._org_lock:
            if self._org_views is None:
                try:
                    ident = self.caller_identity(ORGANIZATIONS_REGION)
                    own, partition = str(ident["Account"]), str(ident.get("Arn", "arn:aws:")).split(":")[1] or "aws"
                    found = discover(self.client("organizations", ORGANIZATIONS_REGION), self.organization)
                    self._org_views = [
                        self if a.id == own else
                        AccountClients(self, role_arn(a.id, self.organization.role_name, partition), name=a.name)
                        for a in found.accounts]
                except OrganizationError as exc:
                    self._org_views = [UnlistedAccounts(exc)]
                except Exception as exc:  # noqa: BLE001 - e.g. no base credentials: one line, not a traceback
                    self._org_views = [UnlistedAccounts(OrganizationError(
                        f"cannot list the organization's accounts ({error_code(exc)}); no organization account "
                        f"was swept"))]
            return list(self._org_views)

    def scoped(self, account: str | None) -> AccountClients | AwsClients:
        """The clients for an account id named in a finding: its role if one is configured, else the base."""
        for arn in self.role_arns:
            if account and account_of_arn(arn) == str(account):
                return AccountClients(self, arn)
        if account and self.organization is not None:
            for v in self._organization_views():
                if isinstance(v, AccountClients) and account_of_arn(v.role_arn) == str(account):
                    return v
        return self

    @property
    def label(self) -> str:
        return "default credentials"


class AccountClients:
    """The clients of one assumed-role account; same interface as AwsClients for tools and collectors."""

    def __init__(self, parent: AwsClients, role_arn: str, *, name: str = "") -> None:
        self.parent = parent
        self.role_arn = role_arn
        self.name = name  # the account's name in the organization, when it came from there
        self.dry_run = parent.dry_run
        self.call_log = parent.call_log

    def client(self, service: str, region: str) -> Any:
        return self.parent.client(service, region, role_arn=self.role_arn)

    def account_id(self, region: str) -> str:
        """Assumes the role (once; botocore refreshes it) and returns the account it belongs to."""
        return self.parent._role(self.role_arn, region).account()

    def scoped(self, account: str | None) -> AccountClients | AwsClients:
        return self.parent.scoped(account)

    @property
    def label(self) -> str:
        return f"role {self.role_arn}" + (f" ({self.name})" if self.name else "")


class UnlistedAccounts:
    """Stands in for an organization whose accounts could not be listed: the collectors' per-account
    error path (`each_account`) reports its one-line error and the sweep goes on with the rest."""

    label = "organization"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def account_id(self, region: str) -> str:
        raise self.error


def scoped(clients: Any, account: str | None) -> Any:
    """Tools call this with the account of their args, so an action in another account uses its role."""
    fn = getattr(clients, "scoped", None)
    return fn(account) if fn is not None else clients
