"""On-demand prices from the data files shipped in the package, with config overrides.

Every figure is returned as USD per hour *per unit*: per instance for EC2 and SageMaker
(`ml.*`) instance types, per GB for EBS storage (`ebs:<volume type>`, `ebs-snapshot:<tier>`,
quoted per GB-month in the data file and in overrides), per address for `eip`.

Loaded once, lazily. An unknown type yields no price (never a silent $0): the caller reports
the finding as unpriced and warns.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

HOURS_PER_MONTH = Decimal("730")

_FILES = {"ec2": "aws_ec2_on_demand.yml", "sagemaker": "aws_sagemaker_on_demand.yml",
          "storage": "aws_storage_network.yml"}


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    with resources.files("tools").joinpath("data", name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _table(provider: str, kind: str = "") -> dict[str, Any]:
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


class PriceBook:
    def __init__(self, overrides: dict[str, float] | None = None) -> None:
        # override keys: "<type>" or "<region>/<type>", in the unit of the data file
        self.overrides = {k: Decimal(str(v)) for k, v in (overrides or {}).items()}

    def hourly(self, provider: str, region: str, kind: str) -> tuple[Decimal | None, str]:
        table = _table(provider, kind)
        for key in (f"{region}/{kind}", kind):
            if key in self.overrides:
                return _per_hour(table, kind, self.overrides[key]), "config override"
        regions = table.get("regions", {})
        label = f"{table.get('source')}, as of {table.get('as_of')}"
        if kind in regions.get(region, {}):
            return _per_hour(table, kind, Decimal(str(regions[region][kind]))), label
        if kind in regions.get("us-east-1", {}):
            return (_per_hour(table, kind, Decimal(str(regions["us-east-1"][kind]))),
                    f"{label} (us-east-1 figure; no {region} table)")
        return None, "unpriced"
