"""The `litellm_proxy:` config section: where the LiteLLM proxy's management API is and how to reach it.

It lives next to the client that reads it (agent/config.py only mounts it). Nothing is called unless
a `cap-spend` action runs, and in dry-run nothing that changes the proxy ever leaves the process.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class LiteLLMProxySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description=(
        "Base URL of the LiteLLM proxy (http://litellm:4000). Unset: cap-spend actions cannot run."))
    master_key: SecretStr | None = Field(None, description=(
        "The proxy's master key (or an admin virtual key), sent as `Authorization: Bearer`; "
        "COSTWARDEN_LITELLM_PROXY__MASTER_KEY. Never logged or stored."))
    timeout_seconds: float = Field(15.0, gt=0, description="Per management API request.")
    retries: int = Field(3, ge=0, le=10, description=(
        "Retries of reads (GET /team/info, /key/info) on 429 and 5xx. Updates are never retried blindly: "
        "the action reads the state back instead."))
    retry_wait_seconds: float = Field(0.5, ge=0, description="First back-off; doubles per retry (Retry-After wins).")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("url needs an explicit scheme (http://litellm:4000 or https://...)")
        return v.rstrip("/") if v else v

    @property
    def configured(self) -> bool:
        return bool(self.url)
