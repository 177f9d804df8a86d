"""A fake AWS Price List API (pricing:GetProducts) on 127.0.0.1, for real boto3.

moto (5.2.5) does not implement the Pricing service, so this speaks its wire protocol: JSON 1.1
with `X-Amz-Target: AWSPriceListService.GetProducts`. It holds PriceList documents shaped like the
real ones (product.attributes, terms.OnDemand/Reserved, priceDimensions with pricePerUnit.USD as a
10-decimal string) and, next to each on-demand Linux product, the look-alikes a real catalogue
has for the same type (Windows, RHEL, Dedicated tenancy, an unused Capacity Reservation at $0,
SQL Server pre-installed), so a request whose filters are wrong gets the wrong answer here too.
Filters (TERM_MATCH, EQUALS, CONTAINS, ANY_OF with a comma-separated value, NONE_OF) and
NextToken paging behave like the API's; `page_size` makes paging happen with few products.
Every request is recorded (operation, region it was signed for, filters); `deny` answers
AccessDeniedException like an account without pricing:GetProducts.

The prices seeded by tests are illustrative, not AWS's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from typing import Any

from tests.fakes._wsgi import WsgiFake

TARGET_PREFIX = "AWSPriceListService."
JSON_CONTENT = "application/x-amz-json-1.1"
_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
_LOCATION = {"us-east-1": ("US East (N. Virginia)", ""), "us-west-2": ("US West (Oregon)", "USW2-"),
             "eu-west-1": ("EU (Ireland)", "EU-"), "ap-south-1": ("Asia Pacific (Mumbai)", "APS3-")}
PUBLICATION = "2026-11-20T17:42:06Z"


class FakeError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _sku(*parts: str) -> str:
    return base64.b32encode(hashlib.sha1("/".join(parts).encode()).digest()).decode()[:16]


def _terms(sku: str, usd: float, description: str, unit: str = "Hrs") -> dict[str, Any]:
    od, rate = "JRTCKXETXF", "6YS6EN2CT7"
    reserved = "4NA7Y494T4"
    return {
        "OnDemand": {f"{sku}.{od}": {
            "priceDimensions": {f"{sku}.{od}.{rate}": {
                "unit": unit, "endRange": "Inf", "description": description, "appliesTo": [],
                "rateCode": f"{sku}.{od}.{rate}", "beginRange": "0", "pricePerUnit": {"USD": f"{usd:.10f}"}}},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": od, "termAttributes": {}}},
        "Reserved": {f"{sku}.{reserved}": {
            "priceDimensions": {f"{sku}.{reserved}.{rate}": {
                "unit": unit, "endRange": "Inf", "description": "Linux/UNIX (Amazon VPC), 1yr, No Upfront",
                "appliesTo": [], "rateCode": f"{sku}.{reserved}.{rate}", "beginRange": "0",
                "pricePerUnit": {"USD": f"{usd * 0.62:.10f}"}}},
            "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z", "offerTermCode": reserved,
            "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard",
                               "PurchaseOption": "No Upfront"}}},
    }


def ec2_product(region: str, instance_type: str, usd: float, *, operating_system: str = "Linux",
                tenancy: str = "Shared", pre_installed: str = "NA", capacity: str = "Used",
                operation: str = "RunInstances") -> dict[str, Any]:
    location, prefix = _LOCATION.get(region, (region, region.upper() + "-"))
    sku = _sku("ec2", region, instance_type, operating_system, tenancy, pre_installed, capacity, operation)
    usage = {"Shared": "BoxUsage", "Dedicated": "DedicatedUsage"}.get(tenancy, "HostUsage")
    attrs = {
        "enhancedNetworkingSupported": "Yes", "intelTurboAvailable": "No", "memory": "2048 GiB",
        "dedicatedEbsThroughput": "100000 Mbps", "vcpu": "192", "classicnetworkingsupport": "false",
        "capacitystatus": capacity, "locationType": "AWS Region", "storage": "8 x 3840 SSD",
        "instanceFamily": "Accelerated Computing", "operatingSystem": operating_system, "regionCode": region,
        "physicalProcessor": "Intel Sapphire Rapids", "servicename": "Amazon Elastic Compute Cloud",
        "instanceType": instance_type, "tenancy": tenancy, "usagetype": f"{prefix}{usage}:{instance_type}",
        "normalizationSizeFactor": "384", "preInstalledSw": pre_installed, "location": location,
        "servicecode": "AmazonEC2", "operation": operation, "licenseModel": "No License required",
        "currentGeneration": "Yes", "marketoption": "OnDemand", "gpu": "8",
    }
    desc = f"${usd:.4f} per On Demand {operating_system} {instance_type} Instance Hour"
    return {"product": {"productFamily": "Compute Instance", "attributes": attrs, "sku": sku},
            "serviceCode": "AmazonEC2", "terms": _terms(sku, usd, desc), "version": "20261120174206",
            "publicationDate": PUBLICATION}


def sagemaker_product(region: str, instance_name: str, usd: float, *, component: str = "Hosting") -> dict[str, Any]:
    location, prefix = _LOCATION.get(region, (region, region.upper() + "-"))
    sku = _sku("sagemaker", region, instance_name, component)
    usage = {"Hosting": "Host", "Training": "Train", "Notebook": "Notebk"}.get(component, component)
    attrs = {"component": component, "computeType": "GPU", "instanceName": instance_name,
             "location": location, "locationType": "AWS Region", "operation": "RunInstance",
             "regionCode": region, "servicecode": "AmazonSageMaker", "servicename": "Amazon SageMaker",
             "usagetype": f"{prefix}{usage}:{instance_name}", "vCpu": "4", "memory": "16 GiB"}
    desc = f"${usd:.3f} per {component} {instance_name} hour in {location}"
    return {"product": {"productFamily": "ML Instance", "attributes": attrs, "sku": sku},
            "serviceCode": "AmazonSageMaker", "terms": _terms(sku, usd, desc), "version": "20261120174206",
            "publicationDate": PUBLICATION}


def _matches(doc: dict[str, Any], flt: dict[str, str]) -> bool:
    field, value, kind = flt.get("Field", ""), flt.get("Value", ""), flt.get("Type", "")
    attrs = doc["product"]["attributes"]
    actual = doc["serviceCode"] if field == "ServiceCode" else attrs.get(field)
    if kind in ("TERM_MATCH", "EQUALS"):
        return actual is not None and str(actual).lower() == value.lower()
    if kind == "CONTAINS":
        return actual is not None and value.lower() in str(actual).lower()
    values = {v.strip().lower() for v in value.split(",")}
    if kind == "ANY_OF":
        return actual is not None and str(actual).lower() in values
    if kind == "NONE_OF":
        return actual is None or str(actual).lower() not in values
    raise FakeError("InvalidParameterException", f"Invalid filter type {kind!r}")


class PricingFake(WsgiFake):
    """GetProducts over the products added with `add_ec2` / `add_sagemaker`; see the module docstring."""

    def __init__(self, *, page_size: int = 100) -> None:
        self.page_size = page_size
        self.deny = False
        self.products: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # {"op", "region", "body"} per request, pages included
        self._lock = threading.Lock()
        self._server: Any = None

    def add_ec2(self, region: str, instance_type: str, usd: float, *, with_lookalikes: bool = True) -> None:
        """The on-demand Linux product, plus the same type's other products a real catalogue holds."""
        self.products.append(ec2_product(region, instance_type, usd))
        if with_lookalikes:
            self.products += [
                ec2_product(region, instance_type, usd * 1.09, operating_system="Windows", operation="RunInstances:0002"),
                ec2_product(region, instance_type, usd * 1.04, operating_system="RHEL", operation="RunInstances:0010"),
                ec2_product(region, instance_type, usd * 1.1, tenancy="Dedicated"),
                ec2_product(region, instance_type, 0.0, capacity="UnusedCapacityReservation"),
                ec2_product(region, instance_type, usd + 9.6, pre_installed="SQL Std", operation="RunInstances:0004"),
            ]

    def add_sagemaker(self, region: str, instance_name: str, usd: float) -> None:
        self.products += [sagemaker_product(region, instance_name, usd),
                          sagemaker_product(region, instance_name, usd * 1.3, component="Training")]

    @property
    def calls(self) -> list[str]:
        with self._lock:
            return [r["op"] for r in self.requests]

    def clear_calls(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- server ----------------------------------------------------------------------------------

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        op = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        m = _REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            req = {}
        with self._lock:
            self.requests.append({"op": op, "region": m.group(1) if m else "", "body": req})
        try:
            if not target.startswith(TARGET_PREFIX):
                raise FakeError("UnknownOperationException", "this fake speaks JSON 1.1 (X-Amz-Target) only")
            if self.deny:
                raise FakeError("AccessDeniedException", "User: arn:aws:iam::123456789012:user/ci is not authorized "
                                                         "to perform: pricing:GetProducts", 400)
            if op != "GetProducts":
                raise FakeError("UnknownOperationException", f"the fake implements GetProducts only, not {op}")
            status, payload = "200 OK", self.get_products(req)
        except FakeError as exc:
            status, payload = f"{exc.status} Bad Request", {"__type": exc.code, "Message": exc.message}
        data = json.dumps(payload, separators=(",", ":")).encode()
        start_response(status, [("Content-Type", JSON_CONTENT), ("Content-Length", str(len(data)))])
        return [data]

    def get_products(self, req: dict[str, Any]) -> dict[str, Any]:
        service = req.get("ServiceCode")
        if not service:
            raise FakeError("InvalidParameterException", "ServiceCode is required")
        page = int(req.get("MaxResults") or self.page_size)
        if not 1 <= page <= 100:
            raise FakeError("InvalidParameterException", "MaxResults must be between 1 and 100")
        filters = req.get("Filters") or []
        for f in filters:
            if len(str(f.get("Value", ""))) > 1024:
                raise FakeError("InvalidParameterException", "Filter value longer than 1024 characters")
        found = [d for d in self.products if d["serviceCode"] == service and all(_matches(d, f) for f in filters)]
        start = 0
        if req.get("NextToken"):
            try:
                start = int(base64.urlsafe_b64decode(req["NextToken"].encode()).decode())
            except ValueError:
                raise FakeError("InvalidNextTokenException", "The next token is invalid") from None
        size = min(page, self.page_size)
        out: dict[str, Any] = {"FormatVersion": "aws_v1",
                               "PriceList": [json.dumps(d) for d in found[start:start + size]]}
        if start + size < len(found):
            out["NextToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return out


__all__ = ["PricingFake", "ec2_product", "sagemaker_product"]
