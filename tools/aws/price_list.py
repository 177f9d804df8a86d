"""On-demand EC2 and SageMaker prices from the AWS Price List API (pricing:GetProducts).

Why: the tables shipped in tools/data/ are transcribed by hand, age, and miss types AWS added
since (p5en, trn2, several g5/g6/g6e sizes). The Price List API is AWS's own figure for every
type and region, public to any account with `pricing:GetProducts`.

How it stays cheap: prices are fetched lazily, only for the (service, region, type) a sweep
actually asks about, several types to a request (an ANY_OF filter), and kept in a JSON file in
`state_dir` for a TTL (tools/aws/price_cache.py); a sweep never downloads the catalogue. How it
stays safe: the client is an AwsClients in dry-run (GetProducts is a read, so the SDK-level hook
lets it through and would refuse anything else), and its requests count in the sweep's call
log. When the API cannot be reached (AccessDenied, no network, no credentials) that is one
warning line, and the caller falls back to the shipped tables for the rest of the run.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from costwarden.tools.aws.price_cache import CachedPrice, PriceCache, cache_key, split_key
from costwarden.tools.calls import CallLog

EC2 = "AmazonEC2"
SAGEMAKER = "AmazonSageMaker"
# The Price List API is served from these regions only (any of them answers for every region).
API_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
MAX_RESULTS = 100  # GetProducts' largest page
MAX_FILTER_VALUE = 1024  # longest Filter.Value the API accepts (an ANY_OF list is comma-separated)
MAX_PAGES = 50  # per request; a batch of types fits in one or two pages, so this only stops a runaway loop
# Which product attribute names the type, and the filters that pick the one on-demand product a
# running instance bills: Linux, shared tenancy, no pre-installed software, capacity in use
# (not an idle Capacity Reservation); SageMaker: real-time inference hosting.
_TYPE_FIELD = {EC2: "instanceType", SAGEMAKER: "instanceName"}
_FIXED_FILTERS = {
    EC2: {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used"},
    SAGEMAKER: {"component": "Hosting"},
}


def service_of(kind: str) -> str | None:
    """The Price List service code of an AWS price-book kind; None for kinds it does not price here
    (EBS storage and snapshots, Elastic IPs: per-GB and per-address figures stay in the tables)."""
    if not kind or kind == "eip" or kind.startswith(("ebs:", "ebs-snapshot:")):
        return None
    return SAGEMAKER if kind.startswith("ml.") else EC2


def product_filters(service: str, region: str, types: list[str]) -> list[dict[str, str]]:
    """The GetProducts filters for the on-demand products of `types` in `region` (TERM_MATCH, or
    ANY_OF with a comma-separated list when several types share one request)."""
    if not types:
        raise ValueError("no instance types to price")
    field = _TYPE_FIELD[service]
    filters = [{"Type": "ANY_OF", "Field": field, "Value": ",".join(types)} if len(types) > 1 else
               {"Type": "TERM_MATCH", "Field": field, "Value": types[0]},
               {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}]
    filters += [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in _FIXED_FILTERS[service].items()]
    return filters


def batches(types: Iterable[str], limit: int = MAX_FILTER_VALUE) -> list[list[str]]:
    """Split types into groups whose comma-joined list fits one filter value."""
    out: list[list[str]] = []
    size = 0
    for t in dict.fromkeys(types):
        if out and size + 1 + len(t) <= limit:
            out[-1].append(t)
            size += 1 + len(t)
        else:
            out.append([t])
            size = len(t)
    return out


@dataclass(frozen=True)
class Quote:
    """One product's on-demand price per hour, as the API published it."""

    instance_type: str
    region: str
    usd_per_hour: Decimal
    sku: str
    operation: str = ""


def on_demand_quote(doc: str | dict[str, Any], service: str) -> Quote | None:
    """The hourly USD price in one PriceList document (`terms.OnDemand.*.priceDimensions.*.
    pricePerUnit.USD` of the dimension billed in hours); None when it has none, or a zero one
    (a $0 line is never the price of a running instance, and never becomes a silent $0 waste)."""
    p = json.loads(doc) if isinstance(doc, str) else doc
    product = p.get("product") or {}
    attrs = product.get("attributes") or {}
    itype = attrs.get(_TYPE_FIELD[service]) or attrs.get("instanceType")
    region = attrs.get("regionCode")
    if not itype or not region:
        return None
    for term in ((p.get("terms") or {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            if not str(dim.get("unit", "")).lower().startswith("hr"):
                continue
            try:
                usd = Decimal(str((dim.get("pricePerUnit") or {})["USD"]))
            except (KeyError, InvalidOperation):
                continue
            if usd.is_finite() and usd > 0:
                return Quote(str(itype), str(region), Decimal(format(usd.normalize(), "f")), str(product.get("sku", "")),
                             str(attrs.get("operation", "")))
    return None


def parse_price_list(docs: Iterable[str | dict[str, Any]], service: str) -> dict[tuple[str, str], Quote]:
    """(region, type) -> Quote. Should filters let through two products for one type (AWS adds
    attributes over time), the plain `RunInstances` one wins, then the lowest SKU, so the answer
    does not depend on page order. A malformed document is skipped, not fatal."""
    out: dict[tuple[str, str], Quote] = {}
    for doc in docs:
        try:
            q = on_demand_quote(doc, service)
        except (ValueError, TypeError, AttributeError):
            continue
        if q is None:
            continue
        key = (q.region, q.instance_type)
        best = out.get(key)
        if best is None or _rank(q) < _rank(best):
            out[key] = q
    return out


def _rank(q: Quote) -> tuple[int, str]:
    return (0 if q.operation in ("RunInstances", "") else 1, q.sku)


def get_products(client: Any, service: str, filters: list[dict[str, str]]) -> Iterator[str]:
    """Every PriceList document matching `filters`, page after page (boto3's paginator, which also
    stops on a repeated NextToken); at most MAX_PAGES pages."""
    pages = client.get_paginator("get_products").paginate(
        ServiceCode=service, Filters=filters, FormatVersion="aws_v1",
        PaginationConfig={"PageSize": MAX_RESULTS, "MaxItems": MAX_RESULTS * MAX_PAGES})
    for page in pages:
        yield from page.get("PriceList") or []


def fetch_on_demand(client: Any, service: str, region: str, types: list[str]) -> dict[str, Quote]:
    """type -> Quote for the types the API prices in `region`, in as few requests as the filter
    length allows; a type it does not know is simply absent."""
    found: dict[str, Quote] = {}
    for group in batches(types):
        quotes = parse_price_list(get_products(client, service, product_filters(service, region, group)), service)
        wanted = set(group)
        found.update({t: q for (r, t), q in quotes.items() if r == region and t in wanted})
    return found


def api_endpoint(explicit: str | None, api_region: str) -> str:
    """Where the pricing client goes: `pricing.endpoint_url`, else AWS_ENDPOINT_URL_PRICING, else
    AWS's own endpoint, named explicitly so that a global AWS_ENDPOINT_URL (which points the estate's
    APIs at moto in tests and the demo, and moto does not serve this API) is not followed."""
    return explicit or os.environ.get("AWS_ENDPOINT_URL_PRICING") or f"https://api.pricing.{api_region}.amazonaws.com"


def describe_failure(exc: BaseException) -> str:
    """One line naming why the API could not be used (error code and message, or the exception)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'ClientError')}: {str(err.get('Message', '')).splitlines()[0][:200]}".rstrip(": ")
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text}".rstrip(": ")


class AwsPriceList:
    """Prices from the API through the cache file, fetched lazily per (service, region, type).

    `hourly` answers from a fresh cache entry, else asks the API for that type together with the
    other expired entries of the same service and region (one request refreshes them all). After
    the first failure it stops asking for the rest of its life (one sweep) and says so once in
    `warnings`; an expired entry then still answers, labelled as such, since it is newer than the
    shipped tables.
    """

    def __init__(self, cache_path: Path, *, ttl: timedelta = timedelta(days=7), api_region: str = "us-east-1",
                 endpoint_url: str | None = None, call_log: CallLog | None = None, clients: Any = None,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.cache = PriceCache(cache_path)
        self.ttl = ttl
        self.api_region = api_region
        self.endpoint_url = endpoint_url
        self.call_log = call_log
        self._clients = clients
        self._now = now
        self._failed: str | None = None
        self._warnings: list[str] = []
        self._asked: set[str] = set()  # keys fetched by this object: never asked twice in one run
        self._lock = threading.Lock()

    @property
    def warnings(self) -> list[str]:
        return [*self.cache.warnings, *self._warnings]

    def hourly(self, region: str, kind: str) -> tuple[Decimal, str] | None:
        """(USD per hour, "AWS Price List API, <date fetched>"), or None to fall back to the tables."""
        service = service_of(kind)
        if service is None or not region:
            return None
        key = cache_key(service, region, kind)
        with self._lock:
            entry = self.cache.get(key)
            now = self._now()
            if (entry is None or not entry.fresh(now, self.ttl)) and key not in self._asked and self._failed is None:
                self._fetch(service, region, [kind] + self._expired(service, region, now, besides=key))
                entry = self.cache.get(key)
        if entry is None or entry.usd_per_hour is None:
            return None
        label = f"AWS Price List API, {entry.fetched_at:%Y-%m-%d}"
        if not entry.fresh(self._now(), self.ttl):
            label += " (expired; the API could not be reached to refresh it)"
        return entry.usd_per_hour, label

    def _expired(self, service: str, region: str, now: datetime, *, besides: str) -> list[str]:
        """The other types of this service and region whose cached price has expired: a request made
        anyway refreshes them too, since a type one sweep needed the next one likely needs again."""
        out: list[str] = []
        for k in self.cache.keys():
            entry = self.cache.get(k)
            if (k != besides and k not in self._asked and k.startswith(f"{service}/{region}/")
                    and entry is not None and not entry.fresh(now, self.ttl)):
                out.append(split_key(k)[2])
        return out

    def refresh(self, wanted: Iterable[tuple[str, str]]) -> dict[str, CachedPrice]:
        """Fetch (region, kind) pairs now, whatever their age; raises ToolError when the API fails.
        Returns the new cache entries by key. For `costwarden prices refresh`."""
        from costwarden.tools.errors import ToolError

        by: dict[tuple[str, str], list[str]] = {}
        for region, kind in wanted:
            service = service_of(kind)
            if service is None:
                raise ToolError(f"{kind}: not an EC2 or SageMaker instance type; the Price List source prices "
                                f"instances only (EBS and Elastic IP figures come from the shipped tables)")
            by.setdefault((service, region), []).append(kind)
        out: dict[str, CachedPrice] = {}
        with self._lock:
            for (service, region), kinds in by.items():
                if self._failed is not None:
                    break
                out.update(self._fetch(service, region, kinds))
        if self._failed is not None:
            raise ToolError(f"AWS Price List API: {self._failed}")
        return out

    def _fetch(self, service: str, region: str, kinds: list[str]) -> dict[str, CachedPrice]:
        from botocore.exceptions import BotoCoreError, ClientError

        from costwarden.tools.errors import ToolError

        keys = {k: cache_key(service, region, k) for k in kinds}
        self._asked.update(keys.values())
        try:
            quotes = fetch_on_demand(self._client(), service, region, list(keys))
        except (ClientError, BotoCoreError, ToolError) as exc:
            self._failed = describe_failure(exc)
            self._warnings.append(
                f"pricing: the AWS Price List API could not be used ({self._failed}); on-demand prices come from "
                f"the shipped tables (and any cached figure) for the rest of this run")
            return {}
        now = self._now().replace(microsecond=0)
        entries = {keys[k]: CachedPrice(quotes[k].usd_per_hour if k in quotes else None, now,
                                        quotes[k].sku if k in quotes else "") for k in keys}
        self.cache.put_many(entries)
        return entries

    def _client(self) -> Any:
        """The pricing client of a dry-run AwsClients (built on first use: boto3 loads only if a price
        is fetched), on the Price List API's own endpoint (`api_endpoint`)."""
        if self._clients is None:
            from costwarden.tools.aws.session import AwsClients

            self._clients = AwsClients(dry_run=True, endpoint_url=api_endpoint(self.endpoint_url, self.api_region),
                                       call_log=self.call_log)
        return self._clients.client("pricing", self.api_region)
