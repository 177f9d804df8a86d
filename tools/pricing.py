"""On-demand prices from the data files shipped in the package, with config overrides.

Every figure is returned as USD per hour *per unit*: per instance for EC2 and SageMaker
(`ml.*`) instance types, per GB for EBS storage (`ebs:<volume type>`, `ebs-snapshot:<tier>`,
quoted per GB-month in the data file and in overrides), per address for `eip`; per instance for
GCE machine types (provider "gcp"); per node for a Prometheus-scraped GPU node (provider "k8s",
kind "<n>x <GPU model>"), from a per-GPU figure in config (`gpu:<GPU model>`), since what a node
in someone's cluster costs is not in any public price list.

Loaded once, lazily. An unknown type yields no price (never a silent $0): the caller reports
the finding as unpriced and warns.

With `pricing.source: price-list-api` EC2 and SageMaker instance prices come first from the AWS
Price List API (tools/aws/price_list.py: fetched lazily per type, cached in `state_dir` for a
TTL); the tables answer what it cannot. Precedence: overrides > Price List cache > tables.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
import re
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from costwarden.state.domain import HOURS_PER_MONTH

if TYPE_CHECKING:
    from costwarden.tools.aws.price_list import AwsPriceList
    from costwarden.tools.calls import CallLog

PRICE_LIST_CACHE = "aws_price_list.json"  # in state_dir

_FILES = {"ec2": "aws_ec2_on_demand.yml", "sagemaker": "aws_sagemaker_on_demand.yml",
          "storage": "aws_storage_network.yml", "gcp": "gcp_compute_on_demand.yml"}
_NODE_KIND = re.compile(r"(\d+)x (.+)")


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    with resources.files("costwarden.tools").joinpath("data", name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def price_table(provider: str, kind: str = "") -> dict[str, Any]:
    """The shipped on-demand table that prices `kind` for `provider` (tools/data/, parsed once):
    `regions` (region -> type -> figure), `source`, `as_of`, and `units` where a figure is not
    per hour. Empty for a provider with no public price list (k8s). Shared: do not change it."""
    if provider == "gcp":
        return _load(_FILES["gcp"])
    if provider != "aws":
        return {"regions": {}, "source": "none", "as_of": ""}
    if kind.startswith("ml."):
        return _load(_FILES["sagemaker"])
    if kind.startswith(("ebs:", "ebs-snapshot:")) or kind == "eip":
        return _load(_FILES["storage"])
    return _load(_FILES["ec2"])


def _per_hour(table: dict[str, Any], kind: str, value: Decimal) -> Decimal:
    """Convert a figure quoted per GB-month to per GB-hour (730 hours a month)."""
    for prefix, unit in (table.get("units") or {}).items():
        if kind.startswith(prefix) and unit == "gb_month":
            return value / HOURS_PER_MONTH
    return value


class PricingConfig(Protocol):
    """The `pricing:` settings this module reads (agent/config.py PricingSettings)."""

    overrides: dict[str, float]
    source: str
    cache_ttl_days: float
    api_region: str
    endpoint_url: str | None


class PriceBook:
    def __init__(self, overrides: dict[str, float] | None = None, price_list: AwsPriceList | None = None) -> None:
        # override keys: "<type>" or "<region>/<type>", in the unit of the data file
        self.overrides = {k: Decimal(str(v)) for k, v in (overrides or {}).items()}
        self.price_list = price_list

    @classmethod
    def from_settings(cls, pricing: PricingConfig, state_dir: Path, *, call_log: CallLog | None = None) -> PriceBook:
        """The book a sweep prices with: the tables and overrides, plus the Price List API when
        `pricing.source` is `price-list-api` (its requests go to `call_log`, the sweep's)."""
        if pricing.source != "price-list-api":
            return cls(pricing.overrides)
        from costwarden.tools.aws.price_list import AwsPriceList

        live = AwsPriceList(Path(state_dir) / PRICE_LIST_CACHE, ttl=timedelta(days=pricing.cache_ttl_days),
                            api_region=pricing.api_region, endpoint_url=pricing.endpoint_url, call_log=call_log)
        return cls(pricing.overrides, live)

    @property
    def warnings(self) -> list[str]:
        """One line per problem with the Price List source (unreachable API, unreadable cache)."""
        return self.price_list.warnings if self.price_list is not None else []

    def hourly(self, provider: str, region: str, kind: str) -> tuple[Decimal | None, str]:
        if provider == "k8s":
            return self._node(kind)
        table = price_table(provider, kind)
        for key in (f"{region}/{kind}", kind):
            if key in self.overrides:
                return _per_hour(table, kind, self.overrides[key]), "config override"
        if provider == "aws" and self.price_list is not None:
            live = self.price_list.hourly(region, kind)
            if live is not None:
                return live
        regions = table.get("regions", {})
        label = f"{table.get('source')}, as of {table.get('as_of')}"
        if kind in regions.get(region, {}):
            return _per_hour(table, kind, Decimal(str(regions[region][kind]))), label
        fallback = table.get("fallback_region", "us-east-1")
        if kind in regions.get(fallback, {}):
            return (_per_hour(table, kind, Decimal(str(regions[fallback][kind]))),
                    f"{label} ({fallback} figure; no {region} table)")
        return None, "unpriced"

    def _node(self, kind: str) -> tuple[Decimal | None, str]:
        """'8x NVIDIA A100-SXM4-80GB' -> 8 x the configured `gpu:NVIDIA A100-SXM4-80GB` hourly figure."""
        if kind in self.overrides:  # a whole-node figure wins
            return self.overrides[kind], "config override"
        m = _NODE_KIND.fullmatch(kind)
        if not m:
            return None, "unpriced"
        key = f"gpu:{m.group(2)}"
        if key not in self.overrides:
            return None, f"unpriced (set pricing.overrides['{key}'] to the GPU-hour cost of these nodes)"
        return int(m.group(1)) * self.overrides[key], f"config override ({m.group(1)} x {key})"
