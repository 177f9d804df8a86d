"""Open (or find) the pull request of a pushed gateway branch through the GitHub REST API.

`POST /repos/{owner}/{repo}/pulls` with `{title, head, base, body}` answers 201 and the pull
request (`number`, `html_url`); `GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=all`
lists the ones already open or closed for a branch, which makes the step idempotent. Requests
carry `Accept: application/vnd.github+json` and `X-GitHub-Api-Version: 2022-11-28`.

Dry-run is enforced in the transport: an httpx request hook refuses every method but GET and HEAD
before the request is sent. The token is read from the environment variable the settings name,
never stored, logged or put in an error.
"""

from __future__ import annotations

from typing import Any

from costwarden.tools.calls import CallLog
from costwarden.tools.errors import DryRunViolation, ToolError

API_VERSION = "2022-11-28"


class GitHubError(ToolError):
    """The API refused the request or could not be reached: one line, status and GitHub's message."""


class GitHubClient:
    def __init__(self, api_url: str, token: str | None, *, dry_run: bool, log: CallLog,
                 timeout_s: float = 20.0) -> None:
        import httpx

        self.log = log
        self.dry_run = dry_run
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": "costwarden"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=timeout_s,
                                 event_hooks={"request": [self._guard]})

    def _guard(self, request: Any) -> None:
        """The transport's dry-run rule: nothing but reads leaves the process."""
        name = f"github.{request.method} {_short(request.url.path)}"
        if self.dry_run and request.method not in ("GET", "HEAD"):
            self.log.add(name, refused=True)
            raise DryRunViolation("github", f"{request.method} {request.url.path}")
        self.log.add(name)

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GitHubError(f"github {method} {path}: {exc.__class__.__name__}: {exc}") from None
        if resp.status_code >= 400:
            try:
                body = resp.json()
                detail = body.get("message", "") + "".join(
                    f"; {e.get('message') or e.get('code')}" for e in body.get("errors", []) if isinstance(e, dict))
            except ValueError:
                detail = resp.text[:200]
            raise GitHubError(f"github {method} {path}: HTTP {resp.status_code} {detail}".strip())
        return resp.json()

    def find_pull(self, repo: str, branch: str) -> dict[str, Any] | None:
        """The pull request (open or closed) whose head is `branch` of `repo`, if any."""
        owner = repo.split("/", 1)[0]
        pulls = self._send("GET", f"/repos/{repo}/pulls", params={"head": f"{owner}:{branch}", "state": "all"})
        return pulls[0] if pulls else None

    def create_pull(self, repo: str, *, head: str, base: str, title: str, body: str) -> dict[str, Any]:
        return self._send("POST", f"/repos/{repo}/pulls",
                          json={"title": title, "head": head, "base": base, "body": body})  # type: ignore[no-any-return]


def _short(path: str) -> str:
    """'/repos/acme/gw/pulls' -> 'pulls': call names count operations, not repositories."""
    return path.rstrip("/").rsplit("/", 1)[-1]
