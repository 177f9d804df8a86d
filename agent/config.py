"""Settings: a YAML config file plus COSTWARDEN_* environment variables (which win).

Safe by default: dry_run is on until a config says otherwise.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from costwarden.policies.errors import PolicyError
from costwarden.policies.yamlsrc import load_located_yaml
from costwarden.tools.billing.settings import BillingSettings
from costwarden.tools.aws.settings import CostExplorerSettings, OrganizationSettings, RetrySettings
from costwarden.tools.gateway.settings import GatewaySettings
from costwarden.tools.gcp.settings import GcpSettings
from costwarden.tools.litellm_proxy.settings import LiteLLMProxySettings
from costwarden.tools.prometheus import PrometheusSettings

ENV_PREFIX = "COSTWARDEN_"


class ConfigError(PolicyError):
    """A config file or environment variable is wrong; names the file/variable, line and field."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AwsSettings(Section):
    regions: list[str] = Field(default_factory=lambda: ["us-east-1"], min_length=1, description="Regions to sweep.")
    endpoint_url: str | None = Field(None, description="For tests and the demo; AWS_ENDPOINT_URL works too.")
    accounts: list[str] = Field(default_factory=list, description=(
        "IAM role ARNs to assume with STS, one per account to sweep; empty: the account of the base credentials."))
    organization: OrganizationSettings | None = Field(None, description=(
        "Sweep every ACTIVE account of the AWS Organization (ListAccounts), assuming role_name in each; "
        "adds to `accounts`."))
    cost_explorer: CostExplorerSettings = Field(default_factory=CostExplorerSettings, description=(
        "Daily costs from Cost Explorer when billing.focus_paths is empty; off by default ($0.01 per request)."))
    retries: RetrySettings = Field(default_factory=RetrySettings, description=(
        "botocore's retry mode and attempts per call, set on every AWS client (throttling, 5xx, connection errors)."))

    @field_validator("accounts")
    @classmethod
    def _role_arns(cls, v: list[str]) -> list[str]:
        for arn in v:
            if not re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn):
                raise ValueError(f"not an IAM role ARN: {arn!r} (arn:aws:iam::<12-digit account>:role/<name>)")
        return v


class SlackSettings(Section):
    """Approvals in Slack. Secrets are SecretStr: they never print, log or reach the database."""

    bot_token: SecretStr | None = Field(None, description="xoxb- token of the Costwarden app")
    signing_secret: SecretStr | None = Field(None, description="verifies interaction requests")
    channel: str | None = Field(None, description="default channel for approval requests")
    base_url: str | None = Field(None, description="Slack Web API base URL (tests)")
    app_token: SecretStr | None = Field(None, description=(
        "xapp- app-level token (connections:write): receive clicks over Socket Mode, no public endpoint needed"))
    team_id: str | None = Field(None, pattern=r"^T[A-Z0-9]{2,}$", description=(
        "the workspace (T...) whose clicks count: a click signed with our signing secret but carrying another "
        "workspace's team.id is refused (403). Required for POST /slack/interactions; checked on Socket Mode "
        "clicks too when set"))
    api_app_id: str | None = Field(None, pattern=r"^A[A-Z0-9]{2,}$", description=(
        "when set, the app (A...) a click must carry as api_app_id: clicks on another app's buttons are refused"))
    team_channels: dict[str, str] = Field(default_factory=dict, description=(
        "team -> channel for the weekly digest's per-team messages; a finding's team is read from the tag keys "
        "in billing.tag_map.team (default: team, owner)"))

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith("xapp-"):
            raise ValueError("not an app-level token: Socket Mode needs the app's xapp- token, not a bot token")
        return v

    @field_validator("team_channels")
    @classmethod
    def _team_channels(cls, v: dict[str, str]) -> dict[str, str]:
        for team, channel in v.items():
            if not team.strip() or not channel.strip():
                raise ValueError(f"team {team!r}: both the team and its channel must be non-empty")
        return v

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and self.channel is not None


class LlmSettings(Section):
    """The LLM analyst (agent/llm): explains, classifies and prioritises; never decides.

    No `model`: every node uses its deterministic templates. The budgets cap the agent's own
    spend (summed from the llm_calls table); a breach stops further calls for the run.
    """

    model: str | None = Field(None, description="any litellm model string: openai/gpt-4o-mini, anthropic/..., "
                                                "bedrock/..., vertex_ai/..., ollama/..., litellm_proxy/...")
    api_base: str | None = Field(None, description="e.g. a LiteLLM proxy or an Ollama server URL")
    api_key: SecretStr | None = Field(None, description="else the provider's usual variable (OPENAI_API_KEY, ...)")
    timeout_seconds: float = Field(30.0, gt=0, description="Per completion request.")
    max_retries: int = Field(2, ge=0, le=10, description="retries on rate limits, timeouts, connection errors")
    retry_wait_seconds: float = Field(1.0, ge=0, description="first back-off; doubles per retry")
    max_output_tokens: int = Field(400, ge=16, description="Cap on each completion's output.")
    budget_per_run_usd: float | None = Field(0.50, ge=0, description="None: no per-run cap")
    budget_per_month_usd: float | None = Field(20.0, ge=0, description="None: no monthly cap")
    max_calls_per_run: int = Field(60, ge=0, description="caps unpriced models too")
    max_explanations_per_run: int = Field(25, ge=0, description="largest findings first; the rest keep templates")
    classify_sample_size: int = Field(20, ge=0, le=200, description="requests per feature sent to classify")
    prompt_samples_paths: list[str] = Field(default_factory=list, description=(
        "JSON lines carrying prompt text (OTel gen_ai.input.messages or prompt) per feature; opt-in, redacted "
        "before sending; empty: no classification"))
    mock_response: str | dict[str, Any] | None = Field(
        None, description="tests and demos: litellm's mock_response (text, or a response dict); no request leaves")

    @property
    def enabled(self) -> bool:
        return bool(self.model)


class PricingSettings(Section):
    overrides: dict[str, float] = Field(default_factory=dict,
                                        description="hourly USD by '<type>' or '<region>/<type>'")
    source: Literal["tables", "price-list-api"] = Field("tables", description=(
        "'tables': the figures shipped in tools/data (no AWS permission needed). 'price-list-api': EC2 and "
        "SageMaker instance prices from the AWS Price List API (pricing:GetProducts), fetched only for the types "
        "a sweep meets and cached in state_dir; the tables answer whatever it cannot. Overrides always win."))
    cache_ttl_days: float = Field(7.0, gt=0, le=365,
                                  description="How long a fetched price is used before it is asked for again.")
    api_region: Literal["us-east-1", "eu-central-1", "ap-south-1"] = Field(
        "us-east-1", description="Where the Price List API is called (it is served from these three regions only).")
    endpoint_url: str | None = Field(None, description=(
        "For tests: the Price List API's URL; AWS_ENDPOINT_URL_PRICING works too. Neither aws.endpoint_url nor "
        "AWS_ENDPOINT_URL is followed: they point the estate's APIs at a stand-in (moto) that does not serve this one."))


class OtlpSettings(Section):
    """The OTLP/HTTP receiver (`POST /v1/traces`): applications or a Collector export GenAI spans here."""

    enabled: bool = Field(False, description=(
        "Serve POST /v1/traces on the daemon's port; received spans are spooled under <state_dir>/otlp/ and the "
        "spool is read as token usage like billing.usage_paths."))
    bearer_token: SecretStr | None = Field(None, description=(
        "Senders must present `Authorization: Bearer <token>` (OTEL_EXPORTER_OTLP_HEADERS). Required when "
        "http_host is not a loopback address, unless allow_unauthenticated is true."))
    allow_unauthenticated: bool = Field(False, description=(
        "Accept spans without a token on a non-loopback address (behind a trusted network or proxy only)."))
    max_request_bytes: int = Field(8 << 20, ge=1024, le=1 << 30, description="Largest request body, as sent (413).")
    max_decompressed_bytes: int = Field(32 << 20, ge=1024, le=4 << 30, description=(
        "Largest body after gzip decompression (413): a small bomb cannot inflate past it."))
    retry_after_seconds: int = Field(5, ge=1, le=3600, description=(
        "Retry-After on a 503 when the spool cannot be written (disk full, read-only)."))
    spool_retention_days: float = Field(35.0, gt=0, le=3650, description=(
        "Hourly spool files older than this are deleted as the receiver rotates."))


class FanoutSettings(Section):
    """The distributed mode (`costwarden run --role scheduler|worker|all` on a PostgreSQL database_url):
    every tick, one job per (policy, account, region) on procrastinate's queue; see
    docs/deploy/thousands-of-accounts.md."""

    worker_concurrency: int = Field(8, ge=1, le=256, description=(
        "Jobs one worker process runs at once (threads: a job mostly waits on cloud APIs)."))
    max_attempts: int = Field(3, ge=1, le=20, description=(
        "Tries of a job whose worker died or whose code raised; a part already swept is never swept again."))
    heartbeat_seconds: float = Field(10.0, gt=0, le=600, description=(
        "How often a worker marks itself alive in the queue's table."))
    stalled_after_seconds: float = Field(30.0, gt=0, le=3600, description=(
        "A worker silent this long is presumed dead: the scheduler hands its running jobs to other workers. "
        "More than heartbeat_seconds, with room for a busy database."))
    rate_limits: dict[str, float] = Field(default_factory=dict, description=(
        "Requests per second allowed across every worker and replica, by AWS API operation: "
        "\"sts:AssumeRole\", \"ec2:DescribeInstances\" (botocore's service name, a colon, the operation), "
        "\"ec2:*\" (each EC2 operation not named) or \"*\" (each operation not named). Waited for before each "
        "request is sent (retries included), from token buckets in the shared PostgreSQL (in memory on SQLite). "
        "Applies in every role, single included; empty: no budget."))
    per_account_rate: float | None = Field(None, gt=0, allow_inf_nan=False, description=(
        "Requests per second allowed to each account (every operation together), across workers; none: no "
        "per-account budget beyond one job per account at a time."))
    rate_burst_seconds: float = Field(1.0, gt=0, le=60, description=(
        "A budget lets this many seconds' worth of requests through at once after a quiet spell (at least one)."))

    @field_validator("rate_limits")
    @classmethod
    def _rate_keys(cls, v: dict[str, float]) -> dict[str, float]:
        for key, rate in v.items():
            if not re.fullmatch(r"\*|[a-z0-9-]+:(\*|[A-Z][A-Za-z0-9]*)", key):
                raise ValueError(f"not an API operation: {key!r} (service:Operation as in \"sts:AssumeRole\", "
                                 f"service:* or *)")
            if not (rate > 0 and rate != float("inf")):
                raise ValueError(f"{key}: a rate is a positive, finite number of requests per second, not {rate}")
        return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    dry_run: bool = Field(True, description=(
        "Only audit: no mutating call leaves the process. Set false to let `run` act; `audit` is always dry-run."))
    state_dir: Path = Field(Path("state"), description=(
        "Where the SQLite database (costwarden.db), the LangGraph checkpoints and the price cache go; created if "
        "missing."))
    database_url: str | None = Field(None, description=(
        "Any SQLAlchemy URL instead of <state_dir>/costwarden.db. postgresql+psycopg://... (the postgres extra) lets "
        "several replicas share one database, checkpoints included."))
    policies: list[Path] = Field(default_factory=list, description="policy files or directories; default pack if empty")
    sweep_interval_minutes: float = Field(60.0, gt=0, allow_inf_nan=False, description=(
        "for policies without a `schedule`; a positive, finite number (the --interval-minutes flag is checked by "
        "the same rule)"))
    http_host: str = Field("0.0.0.0", description=(
        "Address /healthz, /readyz, /metrics and /slack/interactions bind to."))
    http_port: int = Field(8080, ge=0, le=65535, description="Port of the HTTP endpoints; 0 picks a free port.")
    shutdown_timeout_seconds: float = Field(30.0, gt=0, description=(
        "On SIGTERM or SIGINT, how long a sweep in flight may take to finish before the process exits anyway."))
    claim_lease_minutes: float = Field(15.0, gt=0, le=1440, description=(
        "On a shared (PostgreSQL) database: how long a claimed or approved action may stay open before "
        "the leader assumes the replica that held it died and settles it (checks the resource, then runs it "
        "once or records it). Longer than any single action takes, retries and verification included. "
        "Not used on SQLite or any other single-process database, where everything open at start-up was left by a "
        "dead process."))
    checkpoint_retention_days: float = Field(7.0, ge=0, le=3650, description=(
        "How long the LangGraph checkpoints of a finished approval thread (executed, rejected, expired) are kept "
        "before the daemon's hourly housekeeping deletes them; 0 deletes them at the next pass. A thread still "
        "waiting for a human is never deleted."))
    json_logs: bool = Field(True, description="JSON lines on stderr, secrets redacted; false: plain text lines.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    aws: AwsSettings = Field(default_factory=AwsSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    gcp: GcpSettings = Field(default_factory=GcpSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    otlp: OtlpSettings = Field(default_factory=OtlpSettings)
    litellm_proxy: LiteLLMProxySettings = Field(default_factory=LiteLLMProxySettings, description=(
        "The LiteLLM proxy whose teams and keys cap-spend actions limit (management API)."))
    fanout: FanoutSettings = Field(default_factory=FanoutSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return v.upper()

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment overrides the config file (passed in as init values)
        return env_settings, init_settings

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'costwarden.db'}"

    @property
    def checkpoint_path(self) -> Path:
        return self.state_dir / "checkpoints.sqlite"

    @property
    def otlp_spool_dir(self) -> Path:
        return self.state_dir / "otlp"


def with_otlp_spool(settings: Settings) -> Settings:
    """With the receiver on, its spool is token usage too: its glob joins billing.usage_paths."""
    glob = str(settings.otlp_spool_dir / "spool-*.jsonl")
    if not settings.otlp.enabled or glob in settings.billing.usage_paths:
        return settings
    billing = settings.billing.model_copy(update={"usage_paths": [*settings.billing.usage_paths, glob]})
    return settings.model_copy(update={"billing": billing})


def with_usage_store(settings: Settings) -> Settings:
    """Token usage is kept across restarts by default: its rollup lives in <state_dir>/usage.duckdb
    unless billing.usage_store names another file."""
    if settings.billing.usage_store or not settings.billing.has_usage:
        return settings
    billing = settings.billing.model_copy(update={"usage_store": str(settings.state_dir / "usage.duckdb")})
    return settings.model_copy(update={"billing": billing})


def _env_name(loc: tuple[Any, ...]) -> str | None:
    name = ENV_PREFIX + "__".join(str(p) for p in loc if isinstance(p, str)).upper()
    top = ENV_PREFIX + str(loc[0]).upper() if loc else ""
    for candidate in (name, top):
        if candidate in os.environ:
            return candidate
    return None


def load_settings(config_path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the config file (if any) and the environment, then apply command-line overrides.

    Precedence: command line > COSTWARDEN_* environment > config file > defaults.
    Raises ConfigError naming the file and line, or the variable, that is wrong.
    """
    data: dict[str, Any] = {}
    doc = None
    if config_path is not None:
        try:
            doc = load_located_yaml(config_path)
        except PolicyError as exc:
            raise ConfigError(exc.path, exc.message, line=exc.line, field=exc.field) from None
        if doc.data is not None and not isinstance(doc.data, dict):
            raise ConfigError(config_path, "a config file is a mapping of settings", line=1)
        data = dict(doc.data or {})
        base = Path(config_path).parent
        if isinstance(data.get("policies"), list):
            data["policies"] = [p if Path(str(p)).is_absolute() else str(base / str(p)) for p in data["policies"]]
    try:
        settings = Settings(**data)
    except SettingsError as exc:  # e.g. a nested variable that is not valid JSON
        m = re.search(r'field "(\w+)"', str(exc))
        prefix = ENV_PREFIX + (m.group(1).upper() if m else "")
        names = sorted(k for k in os.environ if k.startswith(prefix)) or ["environment"]
        cause = exc.__cause__ or exc
        raise ConfigError(", ".join(names), f"not valid JSON: {str(cause).splitlines()[0]}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
        env = _env_name(loc)
        if env:
            raise ConfigError(env, msg, field=field) from None
        if doc is not None:
            raise ConfigError(doc.path, msg, line=doc.line_of(loc), field=field) from None
        raise ConfigError("settings", msg, field=field) from None
    update: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        try:
            field = Settings.model_fields[key]  # with its constraints: the flag obeys the same rule as the file
            rule = Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
            update[key] = TypeAdapter(rule).validate_python(value)
        except ValidationError as exc:
            raise ConfigError("command line", exc.errors()[0]["msg"], field=key) from None
    return with_usage_store(with_otlp_spool(settings.model_copy(update=update) if update else settings))
