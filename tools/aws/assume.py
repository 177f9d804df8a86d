"""An assumed IAM role as botocore sees it: refreshable credentials inside a Session of its own.

Why this shape: botocore's RefreshableCredentials renews the role's credentials before they
expire (advisory 15 min, mandatory 10 min before), under its own lock, for every client signed
with them: nothing caches keys by hand or rebuilds clients when they change. The first
AssumeRole is made here, in our code, so a role that cannot be assumed fails as one ClientError
(botocore would log a traceback for a failed first refresh); later refreshes are botocore's.
AssumeRole goes through the base credentials' STS client, so it gets the same retries, dry-run
hook and call log as every other call. The role's Session shares the base Session's model
loader: 30 roles cost ~47 MB of clients, not ~23 MB of loaded models each; and it reads the base
Session's event handlers instead of registering them again (~1 ms, not ~16 ms, per role).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

from costwarden.tools.aws.reuse import role_session

if TYPE_CHECKING:
    from costwarden.tools.aws.session import AwsClients


def account_of_arn(arn: str) -> str:
    """'arn:aws:iam::123456789012:role/x' -> '123456789012' ('' when it is not an ARN)."""
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else ""


class AssumedRole:
    """One role: `session` builds its clients; `account()` assumes it (once) and names its account."""

    def __init__(self, clients: AwsClients, role_arn: str, region: str) -> None:
        self.clients = clients
        self.role_arn = role_arn
        self.region = region  # where its STS calls go (the region the role was first needed in)
        self._account = ""
        self._credentials: RefreshableCredentials | None = None
        self._lock = threading.Lock()
        # the role's botocore Session: the base's handlers and models, its own credentials (tools/aws/reuse.py)
        self.session = role_session(clients.botocore_session, CredentialResolver([_RoleProvider(self)]))

    def credentials(self) -> RefreshableCredentials:
        with self._lock:
            if self._credentials is None:
                self._credentials = RefreshableCredentials.create_from_metadata(
                    self._assume(), refresh_using=self._assume, method="assume-role")
            return self._credentials

    def account(self) -> str:
        self.credentials()
        return self._account or account_of_arn(self.role_arn)

    def _assume(self) -> dict[str, Any]:
        """AssumeRole, in the metadata shape RefreshableCredentials reads."""
        res = self.clients.client("sts", self.region).assume_role(
            RoleArn=self.role_arn, RoleSessionName=self.clients.role_session_name)
        c = res["Credentials"]
        self._account = account_of_arn(res.get("AssumedRoleUser", {}).get("Arn", "")) or account_of_arn(self.role_arn)
        expires = c["Expiration"]
        return {"access_key": c["AccessKeyId"], "secret_key": c["SecretAccessKey"], "token": c["SessionToken"],
                "expiry_time": expires.isoformat() if hasattr(expires, "isoformat") else str(expires)}


class _RoleProvider(CredentialProvider):
    """The role Session's only credential source."""

    METHOD = "assume-role"
    CANONICAL_NAME = "costwarden-assume-role"

    def __init__(self, role: AssumedRole) -> None:
        super().__init__()
        self.role = role

    def load(self) -> RefreshableCredentials:
        return self.role.credentials()
