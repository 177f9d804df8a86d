"""The `gcp:` config section. It lives in tools/ next to the code that reads it (agent/config.py only
mounts it). Nothing GCP is imported or called unless `projects` is non-empty."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_METRIC_TYPE = r"[a-z][a-z0-9.-]*\.googleapis\.com/[A-Za-z0-9_./-]+"


class GcpMonitoringSettings(BaseModel):
    """`gcp.monitoring:` where Compute instances' utilization is read from Cloud Monitoring."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str | None = Field(None, description=(
        "For tests and the demo: a Cloud Monitoring gRPC endpoint (http://127.0.0.1:PORT: plaintext, anonymous "
        "credentials). Unset: monitoring.googleapis.com with application default credentials."))
    gpu_metric: str = Field("agent.googleapis.com/gpu/utilization", pattern=_METRIC_TYPE, description=(
        "GPU utilization metric type on gce_instance; the default is the Ops Agent's (NVML, percent)."))
    gpu_metric_scale: float = Field(1.0, gt=0, description="Multiplier to percent: 1 for a percent metric, 100 for a fraction.")
    page_size: int = Field(1000, ge=1, le=100000, description="Time series per list_time_series page.")
    filter_max_ids: int = Field(100, ge=0, le=1000, description=(
        "Up to this many candidate instances, each filter names their instance ids; above it, one "
        "project-wide filter per metric and the other instances' series are dropped as they stream in."))
    timeout_seconds: float = Field(60.0, gt=0, description="Per Cloud Monitoring request.")

    @field_validator("endpoint_url")
    @classmethod
    def _scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("endpoint_url needs an explicit scheme (http://127.0.0.1:8086 or https://...)")
        return v


class GcpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    projects: list[str] = Field(default_factory=list, description=(
        "Project ids to sweep; empty: GCP is not swept. Credentials are google-auth's application defaults."))
    endpoint_url: str | None = Field(None, description=(
        "For tests and the demo: a Compute API endpoint (http://127.0.0.1:PORT), reached with anonymous credentials."))
    regions: list[str] = Field(default_factory=list, description="Only these regions (e.g. us-central1); empty: all.")
    page_size: int = Field(500, ge=1, le=500, description="maxResults of each aggregated list page (API maximum 500).")
    timeout_seconds: float = Field(30.0, gt=0, description="Per Compute API request.")
    utilization_source: Literal["auto", "monitoring", "prometheus"] = Field("auto", description=(
        "Where instances' GPU/CPU series come from: Cloud Monitoring, Prometheus (DCGM, matched on "
        "prometheus.gcp_instance_label), or auto: Prometheus when that label is set, else Cloud Monitoring."))
    monitoring: GcpMonitoringSettings = Field(default_factory=GcpMonitoringSettings)

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

    @model_validator(mode="after")
    def _local_monitoring(self) -> "GcpSettings":
        # A custom Compute endpoint (tests, the demo) with the real Monitoring endpoint would send anonymous
        # requests to Google: refuse the combination rather than reach out by surprise.
        if self.utilization_source == "monitoring" and self.endpoint_url and not self.monitoring.endpoint_url:
            raise ValueError("utilization_source is monitoring and endpoint_url points at a custom Compute API: "
                             "set monitoring.endpoint_url too")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.projects)
