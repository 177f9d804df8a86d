"""The `gateway:` section of the config: where the LiteLLM router config lives, for `route-model`.

It lives in tools/ next to the code that reads it (agent/config.py only mounts it). Installation
facts, not policy: the repository holding the gateway's config, the file in it, the branch changes
start from, and optionally the GitHub repository to open pull requests on.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str | None = Field(None, description=(
        "The git repository holding the LiteLLM config: a URL (https://, ssh://, git@host:path) or a local path. "
        "Changes are pushed here, on a new branch; unset: `route-model` proposals are reported only."))
    config_path: str = Field("config.yaml", description="The LiteLLM router config inside the repository.")
    base_branch: str = Field("main", description="The branch changes start from (and pull requests target).")
    github_repo: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", description=(
        "owner/name on GitHub, for actions with `pull_request: true`."))
    github_api_url: str = Field("https://api.github.com", description="GitHub's REST API (Enterprise: its /api/v3).")
    github_token_env: str = Field("GITHUB_TOKEN", description=(
        "The environment variable holding the token that opens pull requests (read when one is opened)."))
    author_name: str = Field("Costwarden", description="Author and committer of the commits.")
    author_email: str = Field("costwarden@localhost", description="Their email.")

    @property
    def configured(self) -> bool:
        return bool(self.repo)
