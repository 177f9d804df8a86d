"""google-cloud-compute clients with Costwarden's dry-run guard built into the transport.

The REST transport sends every call through one `requests` session (an AuthorizedSession). We
mount our own adapter on it: in dry-run it refuses any request that is not a GET/HEAD by raising
DryRunViolation *before* the request is sent, whatever our code or the SDK meant to do. That is
the GCP twin of the botocore before-call hook in tools/aws/session.py. Every request, sent or
refused, is counted in a CallLog by method and path template.

google-cloud-monitoring has no REST transport (2.x ships gRPC only), so its client gets the same
guard as a gRPC client interceptor on its channel: a method that is not a List/Get is refused in
dry-run before it is sent, and every call is logged as `monitoring.<HTTP verb> <method>`.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from costwarden.tools.calls import CallLog
from costwarden.tools.errors import DryRunViolation, ToolError

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Compute paths carry names; the log keys on a template so it stays small in a large estate.
_TEMPLATE = re.compile(r"/(projects|zones|regions|instances|operations|machineTypes)/[^/?]+")


def operation_name(method: str, url: str) -> str:
    """'POST https://h/compute/v1/projects/p/zones/z/instances/vm/stop' -> 'compute.POST instances/stop'."""
    path = url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    path = _TEMPLATE.sub(lambda m: "/" + m.group(1), "/" + path)
    path = path.replace("/compute/v1", "").replace("/projects", "", 1).lstrip("/")
    path = path.replace("zones/instances", "instances").replace("zones/operations", "operations")
    return f"compute.{method} {path}"


def gcp_call_log() -> CallLog:
    """Calls named `compute.<METHOD> <path template>` (see operation_name)."""
    return CallLog(lambda name: name.split(" ", 1)[0].split(".", 1)[1] not in READ_METHODS)


def grpc_operation_name(method: str) -> str:
    """'/google.monitoring.v3.MetricService/CreateTimeSeries' -> 'monitoring.POST CreateTimeSeries'.

    The verb is the one the method's HTTP binding uses (List/Get are GETs), so one CallLog rule
    tells reads from writes for REST and gRPC calls alike."""
    full, _, leaf = method.strip("/").rpartition("/")
    parts = full.split(".")
    service = parts[1] if len(parts) > 1 and parts[0] == "google" else parts[0] or "grpc"
    verb = "GET" if leaf.startswith(("List", "Get")) else "DELETE" if leaf.startswith("Delete") else "POST"
    return f"{service}.{verb} {leaf}"


def grpc_guard(*, dry_run: bool, call_log: CallLog) -> Any:
    """A gRPC client interceptor (unary and streaming) that refuses non-read methods in dry-run."""
    import grpc  # only when a gRPC client (Cloud Monitoring) is built

    class GrpcGuard(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                    grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
        def _check(self, details: Any) -> None:
            name = grpc_operation_name(details.method)
            if dry_run and name.split(" ", 1)[0].split(".", 1)[1] not in READ_METHODS:
                call_log.add(name, refused=True)
                raise DryRunViolation(name.split(".", 1)[0], name.split(".", 1)[1])
            call_log.add(name)

        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            self._check(details)
            return continuation(details, request)

        intercept_unary_stream = intercept_unary_unary

        def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
            self._check(details)
            return continuation(details, request_iterator)

        intercept_stream_stream = intercept_stream_unary

    return GrpcGuard()


def guard_transport(client: Any, *, dry_run: bool, call_log: CallLog) -> Any:
    """Mount the guard on the REST transport's session; refuse to hand out a client we cannot guard."""
    session = getattr(getattr(client, "_transport", None), "_session", None)
    if session is None or not hasattr(session, "mount"):
        raise ToolError(f"{type(client).__name__}: not a REST transport; Costwarden cannot enforce dry-run on it")
    from costwarden.tools.gcp.adapter import GuardedAdapter  # requests loads with the first GCP client

    adapter = GuardedAdapter(dry_run=dry_run, call_log=call_log)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return client


class GcpClients:
    """Compute clients for the configured projects, built on first use and cached.

    `endpoint_url` (tests, the demo) points every client at a local fake with anonymous
    credentials; without it google-auth's application default credentials are used (a service
    account key in GOOGLE_APPLICATION_CREDENTIALS, workload identity, or gcloud's login).
    `utilization` is an optional source of GPU series for Compute instances (Prometheus/DCGM);
    `utilization_source` chooses between it and Cloud Monitoring (tools/gcp/monitoring.py), whose
    options are `monitoring` (a GcpMonitoringSettings).
    """

    def __init__(self, *, dry_run: bool, projects: list[str], endpoint_url: str | None = None,
                 regions: list[str] | None = None, page_size: int = 500, timeout_s: float = 30.0,
                 call_log: CallLog | None = None, utilization: Any = None,
                 utilization_source: str = "auto", monitoring: Any = None) -> None:
        self.dry_run = dry_run
        self.projects = list(projects)
        self.endpoint_url = endpoint_url
        self.regions = list(regions or [])
        self.page_size = page_size
        self.timeout_s = timeout_s
        self.call_log = call_log or gcp_call_log()
        self.utilization = utilization
        self.utilization_source = utilization_source
        if monitoring is None:
            from costwarden.tools.gcp.settings import GcpMonitoringSettings

            monitoring = GcpMonitoringSettings()
        self.monitoring = monitoring
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _options(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"transport": "rest"}
        if self.endpoint_url:
            from google.auth.credentials import AnonymousCredentials

            # the scheme must be explicit: without it the client assumes https
            endpoint = self.endpoint_url if "://" in self.endpoint_url else f"https://{self.endpoint_url}"
            kwargs.update(credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})
        return kwargs

    def _client(self, kind: str) -> Any:
        with self._lock:
            c = self._clients.get(kind)
            if c is None:
                try:
                    from google.auth.exceptions import DefaultCredentialsError
                    from google.cloud import compute_v1  # ~1-4 s and ~117 MB: only when GCP is configured
                except ImportError:
                    raise ToolError("GCP is configured but google-cloud-compute is not installed: "
                                    "pip install google-cloud-compute") from None
                cls = {"instances": compute_v1.InstancesClient, "zone_operations": compute_v1.ZoneOperationsClient}[kind]
                try:
                    c = cls(**self._options())
                except DefaultCredentialsError as exc:
                    raise ToolError(f"gcp: no credentials ({str(exc).splitlines()[0]}); set "
                                    "GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`") from None
                self._clients[kind] = guard_transport(c, dry_run=self.dry_run, call_log=self.call_log)
            return c

    def instances(self) -> Any:
        return self._client("instances")

    def metrics(self) -> Any:
        """A Cloud Monitoring MetricServiceClient whose gRPC channel carries the dry-run guard.

        `monitoring.endpoint_url` http://HOST:PORT (tests, the demo) is a plaintext channel with
        anonymous credentials; otherwise a TLS channel with application default credentials."""
        with self._lock:
            c = self._clients.get("metrics")
            if c is None:
                c = self._clients["metrics"] = self._metric_client()
            return c

    def _metric_client(self) -> Any:
        try:
            import grpc
            from google.auth.exceptions import DefaultCredentialsError
            from google.cloud import monitoring_v3  # ~0.5 s: only when GCP utilization comes from Monitoring
            from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
        except ImportError:
            raise ToolError("gcp.utilization_source is monitoring but google-cloud-monitoring is not installed: "
                            "pip install google-cloud-monitoring") from None
        endpoint = self.monitoring.endpoint_url
        host = endpoint.split("://", 1)[-1].rstrip("/") if endpoint else "monitoring.googleapis.com:443"
        try:
            if endpoint and endpoint.startswith("http://"):
                channel = grpc.insecure_channel(host)
            else:
                channel = MetricServiceGrpcTransport.create_channel(host)  # TLS with application default credentials
        except DefaultCredentialsError as exc:
            raise ToolError(f"gcp: no credentials ({str(exc).splitlines()[0]}); set "
                            "GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`") from None
        guarded = grpc.intercept_channel(channel, grpc_guard(dry_run=self.dry_run, call_log=self.call_log))
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(host=host, channel=guarded))

    def zone_operations(self) -> Any:
        """Built with the same options as the instances client: the SDK's own poller would ignore the endpoint."""
        return self._client("zone_operations")


def gcp_error(exc: BaseException) -> str:
    """One line for a user: '403 Forbidden: <message>' for API errors, the exception's first line otherwise."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None)
    if code is not None and message:
        text = re.sub(r"^(GET|POST|PATCH|PUT|DELETE) \S+: ", "", str(message))
        return f"{int(code) if str(code).isdigit() else code} {type(exc).__name__}: {text.splitlines()[0]}"
    if isinstance(exc, DryRunViolation):
        return str(exc)
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__
