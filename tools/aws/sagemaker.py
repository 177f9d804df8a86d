"""SageMaker real-time endpoints: paginated inventory with their endpoint configs, and the
guarded delete that keeps the endpoint config and records everything needed to recreate it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from costwarden.state.domain import Resource
from costwarden.tools.aws.retry import error_code
from costwarden.tools.aws.session import AwsClients, scoped
from costwarden.tools.errors import ToolError
from costwarden.tools.registry import ToolOutcome, ToolSpec, register_tool
from costwarden.tools.verify import read_back

RESOURCE_TYPE = "aws.sagemaker-endpoint"


def _tags(raw: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw or []}


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """An API response as JSON-able data, without the transport metadata."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k == "ResponseMetadata":
            continue
        out[k] = _jsonable(v)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _not_found(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    return err.get("Code") in ("ValidationException", "ValidationError", "ResourceNotFound") and \
        "could not find" in str(err.get("Message", "")).lower()


def _call(client: Any, op: str, **kwargs: Any) -> dict[str, Any]:
    return getattr(client, op)(**kwargs)


def variants_of(endpoint: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Per production variant: instance type (from the config) and the instances running now (from the endpoint)."""
    running = {v.get("VariantName"): v for v in endpoint.get("ProductionVariants") or []}
    out = []
    for pv in config.get("ProductionVariants") or []:
        name = pv.get("VariantName", "")
        live = running.get(name, {})
        count = live.get("CurrentInstanceCount", live.get("DesiredInstanceCount", pv.get("InitialInstanceCount", 0)))
        out.append({"name": name, "instance_type": pv.get("InstanceType", ""),
                    "instance_count": int(count or 0), "serverless": "ServerlessConfig" in pv})
    return out


def to_resource(endpoint: dict[str, Any], config: dict[str, Any], tags: dict[str, str], account: str,
                region: str) -> Resource:
    variants = variants_of(endpoint, config)
    kinds = [v["instance_type"] for v in variants if v["instance_type"]]
    created = endpoint.get("CreationTime")
    return Resource(
        provider="aws", account=account, region=region, resource_type=RESOURCE_TYPE,
        resource_id=endpoint["EndpointName"], kind=kinds[0] if kinds else "serverless",
        state=endpoint.get("EndpointStatus", ""), tags=tags,
        attrs={"arn": endpoint.get("EndpointArn", ""), "endpoint_config_name": endpoint.get("EndpointConfigName", ""),
               "creation_time": created.isoformat() if hasattr(created, "isoformat") else str(created or ""),
               "variants": variants, "variant_names": [v["name"] for v in variants]},
    )


def list_endpoints(clients: AwsClients, account: str, region: str, *, page_size: int = 100) -> Iterator[Resource]:
    """ListEndpoints page by page (boto3's paginator); per endpoint DescribeEndpoint, DescribeEndpointConfig
    (cached) and ListTags."""
    client = clients.client("sagemaker", region)
    configs: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": page_size}):
        for summary in page.get("Endpoints", []):
            name = summary["EndpointName"]
            try:
                endpoint = _call(client, "describe_endpoint", EndpointName=name)
                cname = endpoint.get("EndpointConfigName", "")
                if cname not in configs:
                    configs[cname] = _call(client, "describe_endpoint_config", EndpointConfigName=cname)
                arn = endpoint.get("EndpointArn") or summary.get("EndpointArn", "")
                tags = _tags(_call(client, "list_tags", ResourceArn=arn).get("Tags")) if arn else {}
            except ClientError as exc:
                if _not_found(exc):
                    continue  # deleted between the list and the describe
                raise
            yield to_resource(endpoint, configs[cname], tags, account, region)


def observe_endpoint(clients: AwsClients, *, account: str, region: str, endpoint_name: str) -> dict[str, Any]:
    """The endpoint's full description and its config's, enough to recreate it; state 'deleted' when gone."""
    client = scoped(clients, account).client("sagemaker", region)
    try:
        endpoint = _call(client, "describe_endpoint", EndpointName=endpoint_name)
    except ClientError as exc:
        if _not_found(exc):
            return {"endpoint_name": endpoint_name, "state": "deleted"}
        raise ToolError(f"sagemaker DescribeEndpoint {endpoint_name} in {region}: {error_code(exc)}") from None
    cname = endpoint.get("EndpointConfigName", "")
    try:
        config = _clean(_call(client, "describe_endpoint_config", EndpointConfigName=cname))
    except ClientError as exc:
        config = {"error": error_code(exc)}
    try:
        tags = _tags(_call(client, "list_tags", ResourceArn=endpoint["EndpointArn"]).get("Tags"))
    except ClientError:
        tags = {}
    return {"endpoint_name": endpoint_name, "state": endpoint.get("EndpointStatus", ""),
            "endpoint_config_name": cname, "endpoint": _clean(endpoint), "endpoint_config": config, "tags": tags,
            "recreate": {"EndpointName": endpoint_name, "EndpointConfigName": cname,
                         "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}}


def delete_endpoint(clients: AwsClients, *, account: str, region: str, endpoint_name: str,
                    verify_timeout_s: float = 60.0) -> ToolOutcome:
    """Delete the endpoint (its instances stop billing); keep its endpoint config, so
    CreateEndpoint(EndpointName, EndpointConfigName) brings it back. Verifies the endpoint is gone."""
    view = scoped(clients, account)
    before = observe_endpoint(view, account=account, region=region, endpoint_name=endpoint_name)
    if before["state"] in ("deleted", "Deleting"):
        return ToolOutcome(True, before, "already deleted; nothing to do")
    if "error" in before.get("endpoint_config", {}):
        raise ToolError(f"sagemaker {endpoint_name}: its endpoint config {before['endpoint_config_name']!r} cannot "
                        f"be read ({before['endpoint_config']['error']}); not deleting what could not be recreated")
    client = view.client("sagemaker", region)
    try:
        _call(client, "delete_endpoint", EndpointName=endpoint_name)
    except ClientError as exc:
        raise ToolError(f"sagemaker DeleteEndpoint {endpoint_name} in {region}: {error_code(exc)}") from None
    after = read_back(lambda: observe_endpoint(view, account=account, region=region, endpoint_name=endpoint_name),
                      lambda st: st["state"] in ("deleted", "Deleting"), timeout_s=verify_timeout_s)
    try:
        _call(client, "describe_endpoint_config", EndpointConfigName=before["endpoint_config_name"])
        kept = True
    except ClientError:
        kept = False
    after = {**after, "endpoint_config_name": before["endpoint_config_name"], "endpoint_config_kept": kept,
             "recreate": before["recreate"]}
    ok = after["state"] in ("deleted", "Deleting")
    return ToolOutcome(ok, after, "" if ok else f"endpoint still {after['state']} after DeleteEndpoint")


register_tool(ToolSpec(
    name=f"{RESOURCE_TYPE}.delete_endpoint", provider="aws", run=delete_endpoint, observe=observe_endpoint,
    is_done=lambda state: state.get("state") in ("deleted", "Deleting"),
))
