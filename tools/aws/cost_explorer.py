"""Daily costs from AWS Cost Explorer (GetCostAndUsage), shaped like a FOCUS export's daily spend.

The billing collectors use this when no FOCUS export is configured: `CostExplorer.daily_spend`
answers the same question as `FocusExport.daily_spend` (spend per UTC day grouped by logical
dimensions, with filters) and returns the same SpendRow cells, so spend-anomaly and budget
detectors run unchanged on Cost Explorer data. Why it is built this way:

- Every request costs $0.01, so requests are planned, not made per question: a GroupBy holds at
  most two keys, `plan_groupings` packs the key sets a collector needs into as few two-key
  requests as cover them all, and each result is kept for the rest of the collector's run. A
  question whose keys are a subset of a fetched grouping is answered by summing it locally.
- Pages are followed through NextPageToken by hand: botocore ships no paginator for
  GetCostAndUsage. Throttling (CE says LimitExceededException, which botocore's standard and
  adaptive modes treat as throttling) is retried by botocore (tools/aws/retry.py); every other
  error is one CostExplorerError line.
- Amounts stay Decimal and keep their Unit as the currency. FOCUS's EffectiveCost maps to
  AmortizedCost and BilledCost to UnblendedCost.
- The window ends at the start of today (UTC): today's figures are partial and still moving.
- A tag dimension (feature, team, env) uses the first key of billing.tag_map for it (FOCUS
  falls back to the next key per row; a GroupBy cannot). CE reports untagged spend as `key$`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costwarden.tools.aws.retry import error_code
from costwarden.tools.billing.columns import SpendRow
from costwarden.tools.errors import ToolError

CE_REGION = "us-east-1"  # Cost Explorer's one endpoint in the commercial partition
MAX_GROUP_BY = 2
METRIC_FOR = {"EffectiveCost": "AmortizedCost", "BilledCost": "UnblendedCost"}
_DIMENSIONS = {"sub_account": "LINKED_ACCOUNT", "service": "SERVICE", "usage_type": "USAGE_TYPE",
               "region": "REGION", "charge_category": "RECORD_TYPE"}
_TAG_DIMS = ("feature", "team", "env")
CONSTANT_DIMS = ("provider", "billing_account")  # the same on every row: not a GroupBy


class CostExplorerError(ToolError):
    """Cost Explorer refused or failed a request (no permission, data unavailable, bad window)."""


def group_key(dim: str, tag_map: Mapping[str, Sequence[str]]) -> str:
    """Logical dimension -> 'DIMENSION:SERVICE' or 'TAG:team' (a GroupBy entry as one string)."""
    if dim in _DIMENSIONS:
        return f"DIMENSION:{_DIMENSIONS[dim]}"
    if dim.startswith("tag:"):
        return f"TAG:{dim[4:]}"
    if dim in _TAG_DIMS and tag_map.get(dim):
        return f"TAG:{tag_map[dim][0]}"
    raise ValueError(f"Cost Explorer cannot group by {dim!r}")


def plan_groupings(key_sets: Iterable[Iterable[str]]) -> list[tuple[str, ...]]:
    """The fewest requests (each grouped by at most two keys) from which every key set can be summed.

    Largest sets first; a set already inside a planned grouping costs nothing, and a smaller one
    joins a grouping while it stays within two keys. E.g. {account, service}, {service}, {team}, {}
    -> (account, service), (team,): two requests instead of four.
    """
    sets = sorted({tuple(sorted(set(s))) for s in key_sets}, key=lambda s: (-len(s), s))
    plan: list[list[str]] = []
    for s in sets:
        if len(s) > MAX_GROUP_BY:
            raise ValueError(f"Cost Explorer groups by at most {MAX_GROUP_BY} keys, not {list(s)}")
        if any(set(s) <= set(g) for g in plan):
            continue
        for g in plan:
            if len(set(g) | set(s)) <= MAX_GROUP_BY:
                g.extend(k for k in s if k not in g)
                break
        else:
            plan.append(list(s))
    return [tuple(g) for g in plan] or [()]


@dataclass(frozen=True)
class CostCell:
    """One day of one group: the group's values by CE key (None for untagged), amount, currency."""

    day: date
    values: tuple[str | None, ...]
    amount: Decimal
    currency: str
    estimated: bool


def parse_page(page: Mapping[str, Any], keys: Sequence[str], metric: str) -> list[CostCell]:
    """The cells of one GetCostAndUsage response (pure: no client)."""
    cells: list[CostCell] = []
    for period in page.get("ResultsByTime", []):
        day = date.fromisoformat(period["TimePeriod"]["Start"][:10])
        estimated = bool(period.get("Estimated", False))
        if not keys:
            m = period.get("Total", {}).get(metric)
            if m is not None:
                cells.append(CostCell(day, (), Decimal(str(m["Amount"])), str(m.get("Unit", "USD")), estimated))
            continue
        for g in period.get("Groups", []):
            m = g.get("Metrics", {}).get(metric)
            if m is None:
                continue
            values = tuple(_value(k, v) for k, v in zip(keys, g.get("Keys", [])))
            cells.append(CostCell(day, values, Decimal(str(m["Amount"])), str(m.get("Unit", "USD")), estimated))
    return cells


def _value(key: str, raw: str) -> str | None:
    """'team$research' -> 'research'; 'team$' (untagged) -> None; dimension values pass through."""
    if key.startswith("TAG:"):
        _, _, v = raw.partition("$")
        return v or None
    return raw


def get_daily_costs(client: Any, *, start: date, end: date, keys: Sequence[str],
                    metric: str) -> tuple[list[CostCell], dict[str, str], int]:
    """Every page of one daily GetCostAndUsage: (cells, LINKED_ACCOUNT names, requests made)."""
    if len(keys) > MAX_GROUP_BY:
        raise ValueError(f"Cost Explorer groups by at most {MAX_GROUP_BY} keys, not {list(keys)}")
    kwargs: dict[str, Any] = {"TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
                              "Granularity": "DAILY", "Metrics": [metric]}
    if keys:
        kwargs["GroupBy"] = [{"Type": k.split(":", 1)[0], "Key": k.split(":", 1)[1]} for k in keys]
    cells: list[CostCell] = []
    names: dict[str, str] = {}
    requests = 0
    while True:
        page = client.get_cost_and_usage(**kwargs)  # no paginator exists for this operation
        requests += 1
        cells.extend(parse_page(page, keys, metric))
        for attr in page.get("DimensionValueAttributes", []):
            desc = (attr.get("Attributes") or {}).get("description")
            if desc:
                names[str(attr.get("Value"))] = str(desc)
        token = page.get("NextPageToken")
        if not token:
            return cells, names, requests
        kwargs["NextPageToken"] = token


class CostExplorer:
    """Daily spend questions answered from as few GetCostAndUsage requests as possible.

    `clients` is an AwsClients (or one account's view of it): its dry-run hook and call log see
    every request. Results are kept per (grouping, window) for the life of this object, which is
    one collector's run.
    """

    def __init__(self, clients: Any, *, cost_column: str = "EffectiveCost",
                 tag_map: Mapping[str, Sequence[str]] | None = None, provider: str = "AWS") -> None:
        self.clients = clients
        self.metric = METRIC_FOR[cost_column]
        self.tag_map = dict(tag_map or {})
        self.provider = provider
        self.requests = 0
        self.account_names: dict[str, str] = {}
        self._cache: dict[tuple[tuple[str, ...], date, date], list[CostCell]] = {}
        self._payer: str | None = None

    @staticmethod
    def window(start: datetime | date, end: datetime | date) -> tuple[date, date]:
        """[start day, end day) in UTC days; a datetime end means "up to the start of that day"."""
        return (start.date() if isinstance(start, datetime) else start,
                end.date() if isinstance(end, datetime) else end)

    def prefetch(self, dim_sets: Iterable[Sequence[str]], start: datetime | date, end: datetime | date) -> None:
        """Fetch, in as few requests as `plan_groupings` allows, what these questions will need."""
        key_sets = [self._keys(dims) for dims in dim_sets]
        s, e = self.window(start, end)
        for grouping in plan_groupings(key_sets):
            self._grouping(grouping, s, e)

    def daily_spend(self, dims: Sequence[str], start: datetime | date, end: datetime | date,
                    filters: Mapping[str, str] | None = None) -> list[SpendRow]:
        """Spend per day grouped by `dims`, like FocusExport.daily_spend; filters are equality."""
        filters = dict(filters or {})
        s, e = self.window(start, end)
        if s >= e:
            return []
        wanted = self._keys([*dims, *filters])
        grouping = next((g for (g, gs, ge) in self._cache if gs == s and ge == e and set(wanted) <= set(g)), None)
        if grouping is None:
            grouping = tuple(wanted)
        cells = self._grouping(grouping, s, e)
        index = {k: i for i, k in enumerate(grouping)}
        consts = {d: self._constant(d) for d in [*dims, *filters] if d in CONSTANT_DIMS}
        total: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
        for c in cells:
            def value(d: str, c: CostCell = c) -> str | None:
                return consts[d] if d in consts else c.values[index[group_key(d, self.tag_map)]]

            if any(value(d) != str(v) for d, v in filters.items()):
                continue
            total[(tuple(value(d) for d in dims), c.currency, c.day)] += c.amount
        return [SpendRow(dict(zip(dims, k)), day, amount, currency)
                for (k, currency, day), amount in sorted(total.items(), key=lambda kv: (
                    tuple(str(x) for x in kv[0][0]), kv[0][1], kv[0][2]))]

    def _keys(self, dims: Iterable[str]) -> tuple[str, ...]:
        out: list[str] = []
        for d in dims:
            if d in CONSTANT_DIMS:
                continue
            k = group_key(d, self.tag_map)
            if k not in out:
                out.append(k)
        return tuple(out)

    def _grouping(self, keys: tuple[str, ...], start: date, end: date) -> list[CostCell]:
        cached = self._cache.get((keys, start, end))
        if cached is not None:
            return cached
        if start >= end:
            return []
        try:
            client = self.clients.client("ce", CE_REGION)
            cells, names, n = get_daily_costs(client, start=start, end=end, keys=keys, metric=self.metric)
        except (ClientError, BotoCoreError, ToolError) as exc:
            by = " x ".join(k.split(":", 1)[1] for k in keys) or "total"
            raise CostExplorerError(f"GetCostAndUsage daily by {by} {start}..{end}: {error_code(exc)}") from None
        self.requests += n
        self.account_names.update(names)
        self._cache[(keys, start, end)] = cells
        return cells

    def _constant(self, dim: str) -> str:
        if dim == "provider":
            return self.provider
        if self._payer is None:  # the account Cost Explorer answers for: the payer of an organization
            try:
                self._payer = str(self.clients.account_id(CE_REGION))
            except (ClientError, BotoCoreError, ToolError) as exc:
                raise CostExplorerError(f"cannot identify the Cost Explorer account: {error_code(exc)}") from None
        return self._payer
