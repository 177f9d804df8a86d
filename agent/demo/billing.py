"""Demo billing data consistent with the demo estate: a FOCUS 1.2 (or 1.0) CSV export of the last 14 days
and an OpenTelemetry GenAI usage log, each holding one of the seed scenarios:

- FOCUS: the EC2 fleet of the demo (the idle p4d pair bills the research team ~$1,054 a day,
  which blows the team's $20,000 monthly budget), an Amazon CloudWatch log explosion yesterday
  (spend anomaly), a monthly support fee, a credit, and the OpenAI invoice 4% above computed
  token spend (reconciliation).
- Usage: `helpdesk` sends short questions to gpt-4o (the helpdesk trap); `summarize` moved from
  gpt-4o-mini to gpt-4o yesterday (the expensive library update); `docs-search` repeats a long
  system prompt and many identical questions on claude-sonnet-4-5 (cache opportunity);
  `agent-chat` gives starter-tier users unlimited gpt-4o (the unlimited feature); an internal
  model has no public price (an "unpriced" warning, never $0).

Deterministic (seeded) so the demo prints the same numbers every time for the same day.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

DEMO_ACCOUNT = "123456789012"  # moto's default account, the one the demo EC2 fleet lives in
# The column IDs each FOCUS version defines (not the display names: "ProviderName", not "Provider").
# 1.0 has 43; 1.1 added capacity reservations, commitment quantities, ServiceSubcategory and the SKU
# meter/price details; 1.2 added account types, InvoiceId and the pricing-currency columns (57).
_FOCUS_10 = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
    "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName", "ResourceId",
    "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId",
    "SubAccountName", "Tags",
)
_FOCUS_11_ADDED = ("CapacityReservationId", "CapacityReservationStatus", "CommitmentDiscountQuantity",
                   "CommitmentDiscountUnit", "ServiceSubcategory", "SkuMeter", "SkuPriceDetails")
_FOCUS_12_ADDED = ("BillingAccountType", "InvoiceId", "PricingCurrency", "PricingCurrencyContractedUnitPrice",
                   "PricingCurrencyEffectiveCost", "PricingCurrencyListUnitPrice", "SubAccountType")
FOCUS_COLUMNS: dict[str, tuple[str, ...]] = {
    "1.0": _FOCUS_10,
    "1.2": tuple(sorted(_FOCUS_10 + _FOCUS_11_ADDED + _FOCUS_12_ADDED)),
}
FOCUS_VERSIONS = tuple(FOCUS_COLUMNS)
# ServiceName -> (ServiceCategory, ServiceSubcategory), from the spec's allowed values
_SERVICE_CLASS = {
    "Amazon EC2": ("Compute", "Virtual Machines"), "Amazon S3": ("Storage", "Object Storage"),
    "Amazon CloudWatch": ("Management and Governance", "Observability"),
    "OpenAI API": ("AI and Machine Learning", "Generative AI"),
    "AWS Support (Business)": ("Management and Governance", "Support"), "AWS Credits": ("Other", "Other (Other)"),
}
_REGION_NAME = {"us-east-1": "US East (N. Virginia)", "us-west-2": "US West (Oregon)"}
# (Name, type, hourly USD, tags): the demo estate of agent/demo/estate.py at on-demand prices
FLEET = [
    ("llm-finetune-01", "p4d.24xlarge", "21.96", {"team": "research", "env": "staging"}),
    ("llm-finetune-02", "p4d.24xlarge", "21.96", {"team": "research", "env": "dev"}),
    ("inference-h100", "p5.48xlarge", "55.04", {"team": "platform", "env": "prod"}),
    ("embeddings-batch", "g5.2xlarge", "1.212", {"team": "search", "env": "prod"}),
    ("notebook-alice", "g5.xlarge", "1.006", {"team": "research", "env": "dev"}),
    ("web-1", "m5.xlarge", "0.192", {"team": "web", "env": "prod"}),
    ("web-2", "m5.xlarge", "0.192", {"team": "web", "env": "prod"}),
    ("web-3", "m5.xlarge", "0.192", {"team": "web", "env": "prod"}),
]
TIER_REVENUE = {"starter": 20.0, "pro": 99.0, "enterprise": 2000.0}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_usage(path: Path, days: list[datetime], rng: random.Random) -> dict[str, tuple[Decimal, int]]:
    """Write the OTel GenAI log; return the computed OpenAI cost and tokens per day (for the invoice rows)."""
    gpt4o_in, gpt4o_out, mini_in, mini_out = Decimal("2.5e-6"), Decimal("1e-5"), Decimal("1.5e-7"), Decimal("6e-7")
    openai_cost: dict[str, tuple[Decimal, int]] = {}
    faq = [f"q{i}" for i in range(40)]
    with path.open("w", encoding="utf-8") as fh:
        def span(ts: datetime, feature: str, model: str, provider: str, inp: int, out: int, **extra: Any) -> None:
            attrs = {"gen_ai.provider.name": provider, "gen_ai.operation.name": "chat",
                     "gen_ai.request.model": model, "gen_ai.usage.input_tokens": inp,
                     "gen_ai.usage.output_tokens": out, "costwarden.feature": feature,
                     "costwarden.outcome": "success" if rng.random() > 0.03 else "failure", **extra}
            fh.write(json.dumps({"timestamp": _iso(ts), "attributes": attrs}) + "\n")

        for i, day in enumerate(days):
            last = i == len(days) - 1
            cost, tokens = Decimal(0), 0
            for _ in range(1200):  # the helpdesk trap: short questions on a flagship model
                ts = day + timedelta(seconds=rng.randrange(86400))
                inp, out = rng.randint(500, 950), rng.randint(60, 220)
                span(ts, "helpdesk", "gpt-4o", "openai", inp, out, **{"costwarden.tier": "pro",
                     "costwarden.tenant": f"pro-{rng.randrange(30)}"})
                cost += inp * gpt4o_in + out * gpt4o_out
                tokens += inp + out
            model = "gpt-4o" if last else "gpt-4o-mini"  # the expensive library update, yesterday
            for _ in range(300):
                ts = day + timedelta(seconds=rng.randrange(86400))
                inp, out = rng.randint(1500, 2500), rng.randint(200, 400)
                span(ts, "summarize", model, "openai", inp, out, **{"costwarden.tier": "enterprise",
                     "costwarden.tenant": f"ent-{rng.randrange(5)}"})
                cost += inp * (gpt4o_in if last else mini_in) + out * (gpt4o_out if last else mini_out)
                tokens += inp + out
            for u in range(20):  # the unlimited feature: starter users chatting all day with gpt-4o
                for _ in range(20):  # long agent contexts: ~$29 per user-month against a $20 plan
                    ts = day + timedelta(seconds=rng.randrange(86400))
                    inp, out = rng.randint(12000, 18000), rng.randint(800, 1200)
                    span(ts, "agent-chat", "gpt-4o", "openai", inp, out, **{"costwarden.tier": "starter",
                         "costwarden.tenant": f"starter-{u}"})
                    cost += inp * gpt4o_in + out * gpt4o_out
                    tokens += inp + out
            for _ in range(400):  # the same 5,000-token system prompt, and many identical FAQ questions
                ts = day + timedelta(seconds=rng.randrange(86400))
                q = rng.choice(faq) if rng.random() < 0.4 else f"unique-{rng.random()}"
                span(ts, "docs-search", "anthropic/claude-sonnet-4-5", "anthropic", 5000 + rng.randint(100, 900),
                     rng.randint(200, 400), **{"costwarden.tier": "pro", "costwarden.tenant": f"pro-{rng.randrange(30)}",
                                              "costwarden.prompt_hash": q, "costwarden.prompt_prefix_hash": "sys-v3",
                                              "costwarden.prompt_prefix_tokens": 5000})
            for _ in range(20):
                span(day + timedelta(seconds=rng.randrange(86400)), "triage", "acme-internal-llm", "acme",
                     400, 50, **{"costwarden.tier": "enterprise", "costwarden.tenant": "ent-0"})
            openai_cost[day.date().isoformat()] = (cost, tokens)
    return openai_cost


def _dec(value: Decimal | None) -> str:
    """A FOCUS decimal: plain notation (never 1E+3), empty for null."""
    return "" if value is None else format(value, "f")


def write_focus(path: Path, days: list[datetime], openai_cost: dict[str, tuple[Decimal, int]], rng: random.Random,
                focus_version: str = "1.2") -> None:
    """Write the FOCUS export with exactly the columns of `focus_version` (see FOCUS_COLUMNS).

    Every row obeys the spec's value rules that a bill's own numbers can satisfy: cost = unit price
    x pricing quantity, quantities, units, prices and SKUs on Usage and Purchase rows and null on the
    credit, ResourceType only where there is a ResourceId, allowed ServiceCategory and
    ServiceSubcategory values, ISO 8601 UTC timestamps, Tags as a JSON object.
    """
    if focus_version not in FOCUS_COLUMNS:
        raise ValueError(f"FOCUS version {focus_version!r}: the demo export writes {', '.join(FOCUS_VERSIONS)}")
    month_start = days[-1].replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    rows: list[dict[str, Any]] = []

    def add(start: datetime, end: datetime, service: str, cost: Decimal, *, provider: str = "AWS",
            account: str = DEMO_ACCOUNT, resource: str = "", resource_type: str = "",
            tags: dict[str, str] | None = None, charge: str = "Usage", region: str = "us-east-1", sku: str = "",
            quantity: Decimal | None = None, unit: str = "") -> None:
        bp_start = start.replace(day=1, hour=0)
        bp_end = (bp_start + timedelta(days=32)).replace(day=1)
        priced = charge in ("Usage", "Purchase")  # a credit has no quantity, unit price or SKU
        unit_price = (cost / quantity).quantize(Decimal("1e-17")).normalize() if priced and quantity else None
        category, subcategory = _SERVICE_CLASS[service]
        aws = provider == "AWS"
        rows.append({
            "AvailabilityZone": f"{region}a" if resource_type == "Virtual Machine" else "",
            "BilledCost": _dec(cost), "BillingAccountId": account, "BillingAccountName": "demo",
            "BillingAccountType": "Management Account" if aws else "Organization",
            "BillingCurrency": "USD", "BillingPeriodEnd": _iso(bp_end), "BillingPeriodStart": _iso(bp_start),
            "CapacityReservationId": "", "CapacityReservationStatus": "",
            "ChargeCategory": charge, "ChargeClass": "", "ChargeDescription": f"{service} {unit or charge}".strip(),
            "ChargeFrequency": "Usage-Based" if charge == "Usage" else "Recurring" if charge == "Purchase"
            else "One-Time", "ChargePeriodEnd": _iso(end), "ChargePeriodStart": _iso(start),
            "CommitmentDiscountCategory": "", "CommitmentDiscountId": "", "CommitmentDiscountName": "",
            "CommitmentDiscountQuantity": "", "CommitmentDiscountStatus": "", "CommitmentDiscountType": "",
            "CommitmentDiscountUnit": "",
            "ConsumedQuantity": _dec(quantity) if charge == "Usage" else "", "ConsumedUnit": unit if charge == "Usage"
            else "", "ContractedCost": _dec(cost), "ContractedUnitPrice": _dec(unit_price), "EffectiveCost": _dec(cost),
            "InvoiceId": "" if bp_start >= month_start else f"INV-{provider.upper()}-{bp_start:%Y%m}",
            "InvoiceIssuerName": "Amazon Web Services, Inc." if aws else provider,
            "ListCost": _dec(cost), "ListUnitPrice": _dec(unit_price),
            "PricingCategory": "Standard" if priced else "", "PricingCurrency": "USD",
            "PricingCurrencyContractedUnitPrice": _dec(unit_price), "PricingCurrencyEffectiveCost": _dec(cost),
            "PricingCurrencyListUnitPrice": _dec(unit_price),
            "PricingQuantity": _dec(quantity) if priced else "", "PricingUnit": unit if priced else "",
            "ProviderName": provider, "PublisherName": "Amazon Web Services" if aws else provider,
            "RegionId": region, "RegionName": _REGION_NAME.get(region, ""), "ResourceId": resource,
            "ResourceName": resource, "ResourceType": resource_type if resource else "",
            "ServiceCategory": category, "ServiceName": service, "ServiceSubcategory": subcategory,
            "SkuId": sku if priced else "", "SkuMeter": unit if priced else "",
            "SkuPriceDetails": "", "SkuPriceId": f"{sku}:{region or 'global'}:on-demand" if priced and sku else "",
            "SubAccountId": account, "SubAccountName": "demo",
            "SubAccountType": "Member Account" if aws else "Project",
            "Tags": json.dumps(tags or {}),
        })

    for day in days:
        end = day + timedelta(days=1)
        for name, kind, hourly, tags in FLEET:
            add(day, end, "Amazon EC2", Decimal(hourly) * 24, resource=name, resource_type="Virtual Machine",
                tags=tags, sku=kind, quantity=Decimal(24), unit="Hours",
                region="us-west-2" if name in ("notebook-alice", "web-3") else "us-east-1")
        weekend = day.weekday() >= 5
        s3 = Decimal(str(round(40 + (0 if weekend else 25) + rng.random() * 3, 2)))
        add(day, end, "Amazon S3", s3, tags={"team": "web"}, sku="TimedStorage-ByteHrs",
            quantity=s3 / Decimal("0.0008"), unit="GB-Days")  # $0.0008 per GB-day, exact for whole cents
        logs = Decimal(str(round(30 + rng.random() * 4, 2))) * (8 if day == days[-1] else 1)  # the log explosion
        add(day, end, "Amazon CloudWatch", logs, tags={"team": "platform"}, sku="DataProcessing-Bytes",
            quantity=logs * 2, unit="GB")  # $0.50 per GB ingested
        cost, tokens = openai_cost[day.date().isoformat()]
        invoice = (cost * Decimal("1.04")).quantize(Decimal("0.0000001"))
        add(day, end, "OpenAI API", invoice, provider="OpenAI", account="org-demo", region="",
            tags={"team": "product"}, sku="api-tokens", quantity=Decimal(tokens), unit="Tokens")
    add(month_start, next_month, "AWS Support (Business)", Decimal(1500), charge="Purchase", sku="AWSSupportBusiness",
        quantity=Decimal(1), unit="Month", region="")  # global charges: no region
    add(days[-3], days[-2], "AWS Credits", Decimal(-250), charge="Credit", region="")
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(FOCUS_COLUMNS[focus_version]), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def write_demo_billing(directory: Path, now: datetime | None = None, days: int = 14,
                       focus_version: str = "1.2") -> dict[str, Any]:
    """Write both files into `directory`; return the `billing:` settings that read them.

    `focus_version` picks the export's columns: "1.2" (the default, what current exporters write) or
    "1.0" (the newest version the `focus-validator` package on PyPI can check).
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day_list = [today - timedelta(days=n) for n in range(days, 0, -1)]  # complete days, yesterday last
    rng = random.Random(7)
    usage = directory / "otel-genai-usage.jsonl"
    focus = directory / "focus-export.csv"
    openai_cost = write_usage(usage, day_list, rng)
    write_focus(focus, day_list, openai_cost, rng, focus_version)
    return {
        "focus_paths": [str(focus)], "usage_paths": [str(usage)],
        "tier_revenue_usd_month": dict(TIER_REVENUE),
        "budgets": [
            {"name": "research-team", "scope": "team", "value": "research", "monthly_usd": 20000},
            {"name": "web-team", "scope": "team", "value": "web", "monthly_usd": 10000},
            {"name": "agent-chat-llm", "scope": "feature", "value": "agent-chat", "source": "llm",
             "monthly_usd": 400},
        ],
    }
