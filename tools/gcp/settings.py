"""The `gcp:` config section. It lives in tools/ next to the code that reads it (agent/config.py only
mounts it). Nothing GCP is imported or called unless `projects` is non-empty."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class GcpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: list[str] = Field(default_factory=list, description=(
        "Project ids to sweep; empty: GCP is not swept. Credentials are google-auth's application defaults."))
    endpoint_url: str | None = Field(None, description=(
        "For tests and the demo: a Compute API endpoint (http://127.0.0.1:PORT), reached with anonymous credentials."))
    regions: list[str] = Field(default_factory=list, description="Only these regions (e.g. us-central1); empty: all.")
    page_size: int = Field(500, ge=1, le=500, description="maxResults of each aggregated list page (API maximum 500).")
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("projects")
    @classmethod
    def _project_ids(cls, v: list[str]) -> list[str]:
        import re

        for p in v:
            if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", p):
                raise ValueError(f"not a GCP project id: {p!r} (6-30 lowercase letters, digits or hyphens)")
        if len(set(v)) != len(v):
            raise ValueError("a project is listed twice")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("endpoint_url needs an explicit scheme (http://127.0.0.1:8085 or https://...)")
        return v

    @property
    def configured(self) -> bool:
        return bool(self.projects)
