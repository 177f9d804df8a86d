"""Minimal FOCUS 1.2 rows for the billing tests: only the columns the reader needs, plus Tags,
SubAccountId and CommitmentDiscountStatus, written as the CSV a third-party export would be."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

HEADER = ["ProviderName", "BillingAccountId", "SubAccountId", "ServiceName", "ChargeCategory", "BillingCurrency",
          "ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "EffectiveCost", "CommitmentDiscountStatus", "Tags"]


def focus_row(day: date, service: str, cost: float | str, *, billed: float | str | None = None,
              billing_account: str = "900000000001", sub_account: str = "012345678901", provider: str = "AWS",
              category: str = "Usage", status: str = "", tags: str = "{}") -> dict[str, str]:
    end = day + timedelta(days=1)
    return {"ProviderName": provider, "BillingAccountId": billing_account, "SubAccountId": sub_account,
            "ServiceName": service, "ChargeCategory": category, "BillingCurrency": "USD",
            "ChargePeriodStart": f"{day.isoformat()}T00:00:00Z", "ChargePeriodEnd": f"{end.isoformat()}T00:00:00Z",
            "BilledCost": str(cost if billed is None else billed), "EffectiveCost": str(cost),
            "CommitmentDiscountStatus": status, "Tags": tags}


def write_focus(path: Path, rows: list[dict[str, str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path
