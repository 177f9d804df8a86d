"""On-demand instance prices from the data file shipped in the package, with config overrides.

Loaded once, lazily. An unknown type yields no price (never a silent $0): the caller reports
the finding as unpriced and warns.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@lru_cache(maxsize=None)
def _table(provider: str) -> dict[str, Any]:
    name = {"aws": "aws_ec2_on_demand.yml"}.get(provider)
    if name is None:
        return {"regions": {}, "source": "none", "as_of": ""}
    with resources.files("tools").joinpath("data", name).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


class PriceBook:
    def __init__(self, overrides: dict[str, float] | None = None) -> None:
        # override keys: "<type>" or "<region>/<type>", hourly USD
        self.overrides = {k: Decimal(str(v)) for k, v in (overrides or {}).items()}

    def hourly(self, provider: str, region: str, kind: str) -> tuple[Decimal | None, str]:
        for key in (f"{region}/{kind}", kind):
            if key in self.overrides:
                return self.overrides[key], "config override"
        table = _table(provider)
        regions = table.get("regions", {})
        label = f"{table.get('source')}, as of {table.get('as_of')}"
        if kind in regions.get(region, {}):
            return Decimal(str(regions[region][kind])), label
        if kind in regions.get("us-east-1", {}):
            return Decimal(str(regions["us-east-1"][kind])), f"{label} (us-east-1 figure; no {region} table)"
        return None, "unpriced"
