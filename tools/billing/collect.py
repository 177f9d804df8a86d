"""Collectors for billing.focus (daily spend per provider, account and service from FOCUS
exports) and billing.budget (month-to-date spend of each configured budget's scope).

Both run aggregate SQL over the exports and yield small provider-neutral Observations; one bad
export is a line in the report's errors, never the end of the sweep. With no FOCUS export and
`aws.cost_explorer` enabled, the same questions go to AWS Cost Explorer instead
(tools/aws/cost_explorer.py answers them in the FocusExport's shape), so the detectors cannot
tell the two sources apart.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any

from costwarden.state.domain import Observation, Resource, Series
from costwarden.tools.aws.settings import CostExplorerSettings, RetrySettings
from costwarden.tools.billing.columns import SpendRow
from costwarden.tools.billing.focus import FocusExport
from costwarden.tools.billing.settings import BillingSettings, BudgetSpec
from costwarden.tools.billing.warehouse.export import WarehouseExport, open_export
from costwarden.tools.billing.warehouse.runners import ScanLedger
from costwarden.tools.calls import CallLog
from costwarden.tools.collectors import CollectorSpec, CollectPlan, CollectReport, Scope, register_collector
from costwarden.tools.errors import BillingInputError, ToolError
from costwarden.tools.llm.collect import day_epoch
from costwarden.tools.llm.session import UsageSession
from costwarden.tools.llm.usage import UsageLog, open_usage
from costwarden.tools.llm_prices import PriceMap

_FOCUS_DIM = {"account": "sub_account", "service": "service", "feature": "feature", "team": "team", "env": "env"}


@dataclass(frozen=True)
class BillingInputs:
    """What the billing collectors read: the `billing:` settings and, as the fallback when no FOCUS
    export is configured, Cost Explorer (whose requests cost $0.01 each, hence opt-in). `call_log` is
    the sweep's AWS call log, so its Cost Explorer requests count in the run's api_calls."""

    billing: BillingSettings
    cost_explorer: CostExplorerSettings | None = None
    endpoint_url: str | None = None
    call_log: CallLog | None = None
    retries: RetrySettings | None = None  # aws.retries: botocore's retry mode and attempts
    ledger: ScanLedger | None = None  # the sweep's bytes-scanned ledger of billing.warehouse (one allowance)
    usage: UsageSession | None = None  # the sweep's token usage, read once for every policy
    budget: Any = None  # the request-rate budget (tools/rate_budget.py) Cost Explorer's requests wait for

    @property
    def uses_cost_explorer(self) -> bool:
        return self.cost_explorer is not None and self.cost_explorer.enabled and not self.billing.has_bill


def _inputs(source: BillingSettings | BillingInputs) -> BillingInputs:
    return source if isinstance(source, BillingInputs) else BillingInputs(source)


def _now(plan: CollectPlan) -> datetime:
    return plan.now.astimezone(timezone.utc).replace(tzinfo=None)


def open_cost_explorer(inputs: BillingInputs) -> Any:
    """A CostExplorer over its own AwsClients, always in dry-run: it only reads, so the SDK-level hook
    refusing every mutating call costs nothing even when the sweep itself may act. Its requests (and
    any refusal) go to the sweep's AWS call log when one is given."""
    from costwarden.tools.aws.cost_explorer import CostExplorer
    from costwarden.tools.aws.session import AwsClients

    ce = inputs.cost_explorer or CostExplorerSettings()
    clients = AwsClients(dry_run=True, endpoint_url=inputs.endpoint_url, call_log=inputs.call_log,
                         retries=inputs.retries, budget=inputs.budget,
                         role_arns=[ce.role_arn] if ce.role_arn else None)
    return CostExplorer(clients.accounts()[0], cost_column=inputs.billing.cost_column,
                        tag_map=inputs.billing.tag_map)


def collect_focus(billing: BillingSettings | BillingInputs, scope: Scope, plan: CollectPlan,
                  report: CollectReport) -> Iterator[Observation]:
    inputs = _inputs(billing)
    billing = inputs.billing
    if not billing.has_bill:
        if inputs.uses_cost_explorer:
            yield from _collect_cost_explorer(inputs, plan, report)
        return
    now = _now(plan)
    start = now.date() - timedelta(days=billing.lookback_days)
    dims = ["provider", "billing_account", "sub_account", "service"]
    fx: FocusExport | WarehouseExport | None = None
    try:
        fx = open_export(billing, now, inputs.ledger)
        rows = fx.daily_spend(dims, start, now)
        end = fx.data_end() if not rows else None
        if end is not None and end.date() <= start:  # an old export: the window follows the data, loudly
            last = end.date() - timedelta(days=1)
            report.warnings.append(
                f"focus: no spend in the {billing.lookback_days} days before {now:%Y-%m-%d}; the export ends on "
                f"{last.isoformat()}, so the {billing.lookback_days} days up to it are analysed "
                f"(--as-of DATE picks the period)")
            rows = fx.daily_spend(dims, end.date() - timedelta(days=billing.lookback_days), end)
        elif not rows and end is None and not fx.warnings:
            report.warnings.append(f"focus: the export holds no rows ({', '.join(fx.files)})")
        report.warnings.extend(f"focus: {w}" for w in fx.warnings)
    except BillingInputError as exc:
        report.errors.append(f"focus: {exc}")
        return
    finally:
        if isinstance(fx, WarehouseExport):
            report.warnings.append(f"focus: {fx.ledger.summary()}")  # what the sweep's bill queries scanned
    yield from _observations(rows, billing, plan, report)
    fx.close()


def _collect_cost_explorer(inputs: BillingInputs, plan: CollectPlan, report: CollectReport) -> Iterator[Observation]:
    """Daily spend per account and service from Cost Explorer: one planned request (more if it pages),
    plus one for the usage types behind each service's latest day when `usage_types` is on."""
    billing = inputs.billing
    now = _now(plan)
    start = now.date() - timedelta(days=billing.lookback_days)
    ce = open_cost_explorer(inputs)
    try:
        rows = ce.daily_spend(["provider", "billing_account", "sub_account", "service"], start, now)
    except ToolError as exc:
        report.errors.append(f"cost explorer: {exc}")
        return
    drivers: dict[str, list[dict[str, Any]]] = {}
    if inputs.cost_explorer is not None and inputs.cost_explorer.usage_types:
        try:
            drivers = usage_type_drivers(ce.daily_spend(["service", "usage_type"], start, now))
        except ToolError as exc:
            report.errors.append(f"cost explorer: {exc}")
    extra = {svc: {"usage_types": d} for svc, d in drivers.items()}
    yield from _observations(rows, billing, plan, report, source="cost-explorer", extra=extra,
                             account_names=ce.account_names)


def usage_type_drivers(rows: Iterable[SpendRow], top: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Per service, the usage types of its latest day ranked by their rise over their own median
    day before it: what a spend anomaly on that service is made of (all accounts together)."""
    by: dict[str, dict[str, dict[Any, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r.day is not None:
            days = by[str(r.keys["service"])][str(r.keys["usage_type"])]
            days[r.day] = days.get(r.day, 0.0) + float(r.cost)
    out: dict[str, list[dict[str, Any]]] = {}
    for service, types in by.items():
        last = max(d for days in types.values() for d in days)
        before = sorted({d for days in types.values() for d in days if d < last})
        ranked = []
        for ut, days in types.items():
            median = statistics.median([days.get(d, 0.0) for d in before]) if before else 0.0
            ranked.append({"usage_type": ut, "day": last.isoformat(), "spend": round(days.get(last, 0.0), 2),
                           "median": round(median, 2)})
        ranked.sort(key=lambda x: (-(x["spend"] - x["median"]), x["usage_type"]))
        out[service] = ranked[:top]
    return out


def series_id(provider: Any, billing_account: Any, service: Any, currency: Any, *,
              shared_sub_account: bool = False, multi_currency: bool = False) -> str:
    """The resource id of one daily-spend series, naming every dimension it is keyed by that the
    resource's account does not: a sub-account may sit under two billing accounts (third-party FOCUS
    exports repeat sub-account ids), and a finding's id and fingerprint hash the resource's account and
    id, so two series must never share both. Short where nothing is ambiguous: `AWS/Amazon EC2`."""
    rid = f"{provider}/{service}"
    if shared_sub_account:
        rid += f" @{billing_account}"
    if multi_currency:
        rid += f" [{currency}]"
    return rid


def _observations(rows: Iterable[SpendRow], billing: BillingSettings, plan: CollectPlan, report: CollectReport,
                  *, source: str = "focus", extra: dict[str, dict[str, Any]] | None = None,
                  account_names: dict[str, str] | None = None) -> Iterator[Observation]:
    """One billing.focus Observation per provider, account, service and currency: its daily cost series."""
    cells: dict[tuple[Any, ...], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        k = r.keys
        cells[(k["provider"], k["billing_account"], k["sub_account"], k["service"], r.currency)].append(
            (day_epoch(r.day), float(r.cost)))
    scope = _scope_attrs(list(cells.items()), plan)
    currencies: dict[tuple[Any, ...], int] = defaultdict(int)
    parents: dict[tuple[Any, ...], set[Any]] = defaultdict(set)  # (provider, sub-account) -> billing accounts
    for key in cells:
        currencies[key[:4]] += 1
        parents[(key[0], key[2])].add(key[1])
    for (provider, billing_account, sub_account, service, currency), points in sorted(
            cells.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        report.inventoried += 1
        resource = Resource(
            provider="focus", account=str(sub_account or billing_account), region="global",
            resource_type="billing.focus",
            resource_id=series_id(provider, billing_account, service, currency,
                                  shared_sub_account=len(parents[(provider, sub_account)]) > 1,
                                  multi_currency=currencies[(provider, billing_account, sub_account, service)] > 1),
            kind=str(service), state="billed",
            attrs={"provider_name": provider, "service": service, "billing_account": billing_account,
                   "sub_account": sub_account, "currency": currency, "cost_column": billing.cost_column,
                   "source": source, **scope.get(str(currency), {}),
                   **({"account_name": account_names[str(sub_account)]}
                      if account_names and str(sub_account) in account_names else {}),
                   **(extra or {}).get(str(service), {})})
        if plan.wants(resource):
            report.candidates += 1
            yield Observation(resource, {"cost_usd": Series("cost_usd", points)})


def _scope_attrs(cells: list[tuple[tuple[Any, ...], list[tuple[float, float]]]],
                 plan: CollectPlan) -> dict[str, dict[str, Any]]:
    """Per currency, what the spend-anomaly detector needs to know about the whole export: its first and
    last complete day (every series is judged on the same day against the same history) and its mean
    daily spend (an anomaly below a share of it is not material)."""
    today = _now(plan).date()
    out: dict[str, dict[str, Any]] = {}
    by_currency: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, points in cells:
        by_currency[str(key[4])] += points
    for currency, points in by_currency.items():
        days = sorted({datetime.fromtimestamp(t, tz=timezone.utc).date() for t, _ in points})
        complete = [d for d in days if d < today]
        if not complete:
            continue
        first, last = complete[0], complete[-1]
        total = sum(v for t, v in points if first <= datetime.fromtimestamp(t, tz=timezone.utc).date() <= last)
        out[currency] = {"data_start": first.isoformat(), "data_end": last.isoformat(),
                         "scope_daily_usd": round(total / ((last - first).days + 1), 2)}
    return out


def _budget_daily(b: BudgetSpec, billing: BillingSettings, month_start: datetime, now: datetime,
                  cache: dict[str, Any],
                  ledger: ScanLedger | None = None) -> tuple[dict[float, float], dict[str, int]]:
    """Daily spend of the budget's scope since `month_start` (this month and the trailing days before
    it), and token volumes of the budget's month when it comes from usage."""
    if b.source == "llm":
        if "usage" not in cache:
            session = cache.get("session")
            cache["usage"] = session.open(billing) if session is not None else open_usage(billing)
        log: UsageLog = cache["usage"]
        prices = cache.setdefault("prices", PriceMap(billing.price_overrides))
        daily: dict[float, float] = defaultdict(float)
        volumes = {"requests": 0, "input_tokens": 0, "output_tokens": 0}
        month_epoch = day_epoch((now - timedelta(microseconds=1)).date().replace(day=1))
        for d in log.daily(month_start, now):
            if b.scope == "feature" and d.feature != b.value:
                continue
            price = prices.price(d.model)
            daily[day_epoch(d.day)] += float(price.cost(d.input_tokens, d.output_tokens, d.cache_read_tokens)) \
                if price else 0.0
            if day_epoch(d.day) >= month_epoch:  # volumes are month-to-date, as the evidence says
                volumes["requests"] += d.requests
                volumes["input_tokens"] += d.input_tokens
                volumes["output_tokens"] += d.output_tokens
        return dict(daily), volumes
    if "focus" not in cache:
        cache["focus"] = open_export(billing, now, ledger)
    fx: FocusExport = cache["focus"]  # or the CostExplorer, which answers daily_spend the same way
    rows = fx.daily_spend([], month_start, now, filters=_budget_filters(b))
    return {day_epoch(r.day): float(r.cost) for r in rows}, {}


def _data_start(b: BudgetSpec, cache: dict[str, Any]) -> date | None:
    """The first day the budget's source has data for (the whole export or usage log, not the scope:
    a quiet scope's empty days are real zeros), so the budget can tell unseen days from $0 days.
    None for Cost Explorer, which has every day."""
    key = f"start:{b.source}"
    if key not in cache:
        source = cache.get("usage" if b.source == "llm" else "focus")
        if isinstance(source, (FocusExport, WarehouseExport)):
            cache[key] = source.data_start()
        elif isinstance(source, UsageLog):
            span = source.span()
            cache[key] = None if span is None else span[0].date()
        else:
            cache[key] = None
    return cache[key]


def _budget_filters(b: BudgetSpec) -> dict[str, str]:
    return {} if b.scope == "total" else {_FOCUS_DIM[b.scope]: str(b.value)}


def collect_budgets(billing: BillingSettings | BillingInputs, scope: Scope, plan: CollectPlan,
                    report: CollectReport) -> Iterator[Observation]:
    inputs = _inputs(billing)
    billing = inputs.billing
    now = _now(plan)
    # this month and the 31 days before it: the budget's burn rate is its trailing days whichever
    # month they fall in (policies/detectors/budget.py), so it is forecast from the 1st on
    month = (now - timedelta(microseconds=1)).date().replace(day=1)
    month_start = datetime.combine(min(month, now.date() - timedelta(days=31)), datetime.min.time())
    cache: dict[str, Any] = {"session": inputs.usage}
    bill_budgets = [b for b in billing.budgets if b.source == "focus"]
    ce_failed = False
    if inputs.uses_cost_explorer and bill_budgets:
        # every budget's scope planned into as few requests as cover them all, fetched up front
        cache["focus"] = ce = open_cost_explorer(inputs)
        try:
            ce.prefetch([list(_budget_filters(b)) for b in bill_budgets], month_start, now)
        except ToolError as exc:
            report.errors.append(f"budgets: cost explorer: {exc}")
            ce_failed = True
    for b in billing.budgets:
        configured = billing.has_usage if b.source == "llm" else billing.has_bill
        if b.source == "focus" and inputs.uses_cost_explorer:
            if ce_failed:
                continue  # reported once above
        elif not configured:
            report.errors.append(f"budget {b.name}: no billing.{'usage' if b.source == 'llm' else 'focus'}_paths "
                                 f"configured to measure it")
            continue
        try:
            daily, volumes = _budget_daily(b, billing, month_start, now, cache, inputs.ledger)
            if b.source == "focus" and not daily and isinstance(cache.get("focus"), (FocusExport, WarehouseExport)):
                end = cache["focus"].data_end()
                if end is not None and end.date() < month:
                    report.warnings.append(
                        f"budget {b.name}: the export ends on {(end.date() - timedelta(days=1)).isoformat()}, "
                        f"before {month:%B %Y}: nothing to forecast (--as-of DATE judges a closed month)")
        except ToolError as exc:  # BillingInputError, CostExplorerError
            report.errors.append(f"budget {b.name}: {exc}")
            continue
        report.inventoried += 1
        start = _data_start(b, cache)
        resource = Resource(provider="billing", account=str(b.value if b.scope == "account" else "-"),
                            region="global", resource_type="billing.budget", resource_id=b.name, kind=b.scope,
                            state="active", attrs={"scope": b.scope, "value": b.value, "source": b.source,
                                                   "monthly_budget_usd": b.monthly_usd, **volumes,
                                                   **({"data_start": start.isoformat()} if start else {})})
        if plan.wants(resource):
            report.candidates += 1
            yield Observation(resource, {"cost_usd": Series("cost_usd", sorted(daily.items()))})
    if isinstance(cache.get("focus"), WarehouseExport):
        report.warnings.append(f"budgets: {cache['focus'].ledger.summary()}")
    for v in cache.values():
        if hasattr(v, "close"):
            v.close()


def _source(settings: Any, providers: Any = None) -> BillingInputs:
    """The billing settings and, when Cost Explorer is read, the sweep's AWS call log to count its requests."""
    aws = getattr(settings, "aws", None)
    inputs = BillingInputs(settings.billing, getattr(aws, "cost_explorer", None), getattr(aws, "endpoint_url", None),
                           retries=getattr(aws, "retries", None))
    if providers is not None and inputs.uses_cost_explorer:
        inputs = replace(inputs, call_log=providers.aws_call_log, budget=getattr(providers, "aws_budget", None))
    if providers is not None and inputs.billing.warehouse is not None:
        inputs = replace(inputs, ledger=getattr(providers, "warehouse_ledger", None))
    if getattr(providers, "usage", None) is not None:
        inputs = replace(inputs, usage=providers.usage)
    return inputs


register_collector(CollectorSpec("billing.focus", "focus", collect_focus, source=_source, permissions=()))
register_collector(CollectorSpec("billing.budget", "billing", collect_budgets, source=_source, permissions=()))
