"""Price the changes a pull request makes, and decide whether the gate passes.

Pure functions: prices arrive as callables (the CLI passes tools.llm_prices.PriceMap.price and
tools.pricing.PriceBook.hourly), usage as aggregated `UsageGroup`s, so everything here is
testable without files and `policies` never imports `tools`.

Why the volumes are what they are:
- A model swap costs (new price - old price) x the tokens the feature really sends. The tokens
  come from the usage log (`--usage`) when a feature can be tied to the changed setting, else
  from a stated default volume. The same token counts are priced on both sides (tokenizer
  differences between model families are ignored, and said so).
- Which feature a setting belongs to, first rule that applies:
  1. a `costwarden.feature: NAME` annotation above it in the file;
  2. a feature name of the usage log equal to a folder, the file's stem or a key segment of the
     setting (compared lower-case, `-` and `_` alike): `services/summarize/llm.py` -> `summarize`;
     the longest such name wins.
  The volume is the feature's usage of the *old* model when the log has any, else all of the
  feature's usage. No feature, or a feature with no usage: the default volume.
- Instances: on-demand hourly price x hours per month (730) x count. Kubernetes GPUs: the node
  instance type's hourly price divided by its GPUs, or `gpu_hourly_usd` when the node type is
  unknown.
- Anything without a price is listed as unpriced with a warning, never as $0, and stays out of
  the totals (so it can neither pass nor fail the gate silently; see `fail_on_unpriced`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from costwarden.policies.gate.diff import Change
from costwarden.policies.gate.limitcost import price_limit_change
from costwarden.policies.gate.setting import Setting
from costwarden.state.domain import DAYS_PER_MONTH, HOURS_PER_MONTH
from costwarden.state.usage import TokenPrice, UsageGroup

ModelPricer = Callable[[str], "TokenPrice | None"]
InstancePricer = Callable[[str, str, str], "tuple[Decimal | None, str]"]

# GPUs per instance, to price a Kubernetes GPU request by the node type it is pinned to
GPUS_PER_INSTANCE: dict[str, int] = {
    "p3.2xlarge": 1, "p3.8xlarge": 4, "p3.16xlarge": 8, "p3dn.24xlarge": 8, "p4d.24xlarge": 8,
    "p4de.24xlarge": 8, "p5.48xlarge": 8, "p5e.48xlarge": 8, "p5en.48xlarge": 8,
    "g4dn.xlarge": 1, "g4dn.2xlarge": 1, "g4dn.4xlarge": 1, "g4dn.8xlarge": 1, "g4dn.16xlarge": 1,
    "g4dn.12xlarge": 4, "g4dn.metal": 8,
    "g5.xlarge": 1, "g5.2xlarge": 1, "g5.4xlarge": 1, "g5.8xlarge": 1, "g5.16xlarge": 1, "g5.12xlarge": 4,
    "g5.24xlarge": 4, "g5.48xlarge": 8,
    "g6.xlarge": 1, "g6.2xlarge": 1, "g6.4xlarge": 1, "g6.8xlarge": 1, "g6.16xlarge": 1, "g6.12xlarge": 4,
    "g6.24xlarge": 4, "g6.48xlarge": 8,
    "g6e.xlarge": 1, "g6e.2xlarge": 1, "g6e.4xlarge": 1, "g6e.8xlarge": 1, "g6e.16xlarge": 1,
    "g6e.12xlarge": 4, "g6e.24xlarge": 4, "g6e.48xlarge": 8,
}


class GateOptions(BaseModel):
    """What the gate assumes and where it draws the line (from flags; validated here)."""

    model_config = ConfigDict(extra="forbid")
    threshold_pct: float = Field(20.0, ge=0, description="fail when the total increase is above this percentage")
    min_delta_usd: float = Field(0.0, ge=0, description="...and above this many USD per month")
    default_input_tokens: int = Field(1_000_000, ge=0, description="monthly input tokens of a model with no usage")
    default_output_tokens: int = Field(250_000, ge=0, description="monthly output tokens of a model with no usage")
    region: str = "us-east-1"
    hours_per_month: float = Field(float(HOURS_PER_MONTH), gt=0)
    gpu_hourly_usd: float | None = Field(None, gt=0, description="price of one GPU when the node type is unknown")
    fail_on_unpriced: bool = False


class GateSource(BaseModel):
    """What was compared: refs as given, the commits they resolved to, and how much was read."""

    base: str
    head: str
    base_commit: str
    head_commit: str
    compared_from: str  # the merge base of base and head (what the pull request changes)
    files_changed: int
    files_scanned: int
    usage: str | None = None  # the usage files and window, when given


class ChangeReport(BaseModel):
    file: str
    line: int
    old_file: str | None
    kind: Literal["model", "instance", "gpu", "limit", "prompt"]
    key: str
    status: Literal["modified", "added", "removed"]
    old: str | None
    new: str | None
    old_count: int | None
    new_count: int | None
    summary: str
    feature: str | None
    basis: str
    priced: bool
    old_monthly_usd: float | None
    new_monthly_usd: float | None
    delta_monthly_usd: float | None
    delta_pct: float | None
    notes: list[str] = Field(default_factory=list)


class Totals(BaseModel):
    old_monthly_usd: float
    new_monthly_usd: float
    delta_monthly_usd: float
    delta_pct: float | None  # None when nothing was spent before (new spend)


class GateReport(BaseModel):
    """The gate's verdict; `changes` are largest |delta| first, unpriced ones last."""

    source: GateSource
    threshold_pct: float
    min_delta_usd: float
    exceeded: bool
    headline: str
    totals: Totals
    changes: list[ChangeReport]
    unpriced: int
    warnings: list[str]
    assumptions: list[str]
    tier_margins: list[Any] = Field(default_factory=list)  # policies/gate/margins.TierMarginFlag


# -- token volumes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenVolume:
    """Tokens per month; `source` says where they came from, for the report."""

    input_tokens: Decimal
    output_tokens: Decimal
    cache_read_tokens: Decimal
    source: str
    observed: bool
    requests: Decimal = Decimal(0)


def _short(model: str) -> str:
    return model.strip().split("/", 1)[-1].lower() if "/" in model else model.strip().lower()


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _tokens(n: Decimal) -> str:
    for unit, size in (("B", Decimal(10**9)), ("M", Decimal(10**6)), ("k", Decimal(10**3))):
        if n >= size:
            return f"{(n / size):.3g}{unit}"
    return f"{n:.0f}"


class UsageVolumes:
    """Monthly token volumes per feature (and per feature and model) from aggregated usage."""

    def __init__(self, groups: Iterable[UsageGroup], days: float, label: str) -> None:
        self.days = max(float(days), 1.0)
        self.label = label
        scale = DAYS_PER_MONTH / Decimal(str(self.days))
        self._by: dict[tuple[str, str | None], list[Decimal]] = {}
        for g in groups:
            for k in ((g.feature, _short(g.model)), (g.feature, None)):
                acc = self._by.setdefault(k, [Decimal(0)] * 4)
                acc[0] += g.input_tokens * scale
                acc[1] += g.output_tokens * scale
                acc[2] += g.cache_read_tokens * scale
                acc[3] += g.requests * scale

    @property
    def features(self) -> list[str]:
        return sorted({f for f, m in self._by if m is None})

    def volume(self, feature: str, model: str | None) -> TokenVolume | None:
        for key, what in (((feature, _short(model)) if model else None, f"of {model}"), ((feature, None), "")):
            if key is None or key not in self._by:
                continue
            i, o, c, n = self._by[key]
            return TokenVolume(i, o, c, f"feature `{feature}`{' ' + what if what else ''}: {_tokens(i)} input + "
                               f"{_tokens(o)} output tokens/month observed ({self.label})", True, n)
        return None

    def top_model(self, feature: str) -> str:
        """The feature's model with the most output tokens (prices a limit written without a model)."""
        mine = [(v[1], m) for (f, m), v in self._by.items() if f == feature and m is not None]
        return max(mine)[1] if mine else ""


def match_feature(setting: Setting, file: str, features: Iterable[str]) -> tuple[str | None, str]:
    """The feature of a setting and why (see the module docstring for the rule)."""
    if setting.feature:
        return setting.feature, "annotation"
    parts = file.split("/")
    tokens = {_norm(p) for p in parts[:-1]}
    stem = parts[-1].lstrip(".")
    tokens |= {_norm(stem.split(".")[0]), _norm(stem.rsplit(".", 1)[0])}
    tokens |= {_norm(p) for p in re.split(r"[./\[\]#]+", setting.key) if p}
    found = sorted((f for f in features if _norm(f) and _norm(f) in tokens), key=lambda f: (-len(f), f))
    return (found[0], "path") if found else (None, "")


# -- pricing -----------------------------------------------------------------------------------------
def _pct(delta: Decimal, old: Decimal) -> float | None:
    return None if old <= 0 else round(float(delta / old * 100), 1)


def fmt_pct(pct: float | None) -> str:
    if pct is None:
        return "n/a"
    return f"{pct:+,.0f}%" if abs(pct) >= 100 else f"{pct:+.1f}%"


def _describe(ch: Change) -> str:
    o, n, s = ch.old, ch.new, ch.setting
    what = {"model": "model", "instance": "instance", "gpu": "GPU request", "limit": "output-token limit",
            "prompt": "system prompt"}[s.kind]

    def one(x: Setting) -> str:
        if x.kind in ("limit", "prompt"):
            return f"{int(x.value):,} {'tokens' if x.kind == 'limit' else 'chars'}"
        if x.kind == "model":
            return f"`{x.value}`"
        if x.kind == "gpu":
            return f"{x.count} GPU{'s' if x.count != 1 else ''}" + (f" on `{x.value}`" if x.value else "")
        return f"{x.count} x `{x.value}`"

    renamed = f" (key `{o.key}` -> `{n.key}`)" if o and n and o.key != n.key else ""
    if o and n:
        return f"{what} {one(o)} -> {one(n)} at `{s.key}`{renamed}"
    if n:
        return f"{what} {one(n)} added at `{s.key}`"
    return f"{what} {one(o)} removed from `{s.key}`"  # type: ignore[arg-type]


def _instance_monthly(s: Setting, instance_price: InstancePricer, options: GateOptions,
                      warnings: list[str]) -> tuple[Decimal | None, str]:
    hours = Decimal(str(options.hours_per_month))
    if s.kind == "instance":
        hourly, src = instance_price(s.provider or "aws", options.region, s.value)
        if hourly is None:
            warnings.append(f"no price for {s.provider or 'aws'} instance type `{s.value}`: "
                            f"change listed as unpriced (add it to pricing.overrides)")
            return None, src
        return hourly * hours * s.count, f"{src}; {options.hours_per_month:g} h/month"
    # gpu
    per_instance = GPUS_PER_INSTANCE.get(s.value)
    if s.value and per_instance:
        hourly, src = instance_price("aws", options.region, s.value)
        if hourly is not None:
            return hourly / per_instance * hours * s.count, f"{src}; 1/{per_instance} of a `{s.value}` per GPU"
    if options.gpu_hourly_usd is not None:
        return Decimal(str(options.gpu_hourly_usd)) * hours * s.count, f"--gpu-hourly-usd {options.gpu_hourly_usd:g}"
    warnings.append(f"GPU request at `{s.key}`: node type {('`' + s.value + '`') if s.value else 'unknown'} has no "
                    f"per-GPU price; change listed as unpriced (pin node.kubernetes.io/instance-type or pass "
                    f"--gpu-hourly-usd)")
    return None, "unpriced"


def evaluate(changes: list[Change], *, model_price: ModelPricer, instance_price: InstancePricer,
             options: GateOptions, source: GateSource, volumes: UsageVolumes | None = None,
             warnings: Iterable[str] = ()) -> GateReport:
    """Price every change, total the priced ones and decide: exceeded when the total increase is
    above `threshold_pct` (any increase from $0 counts) and above `min_delta_usd`, or when
    `fail_on_unpriced` is set and something could not be priced."""
    warn: list[str] = list(warnings)
    rows: list[tuple[ChangeReport, Decimal | None, Decimal | None]] = []
    default_used = False
    for ch in changes:
        s = ch.setting
        notes = sorted({*(ch.old.notes if ch.old else ()), *(ch.new.notes if ch.new else ())})
        feature, why = match_feature(s, ch.file, volumes.features if volumes else [])
        if s.feature and not feature:
            feature, why = s.feature, "annotation"
        old_cost: Decimal | None = Decimal(0)
        new_cost: Decimal | None = Decimal(0)
        if s.kind == "model":
            vol = volumes.volume(feature, ch.old.value if ch.old else None) if volumes and feature else None
            if vol is None:
                default_used = True
                vol = TokenVolume(Decimal(options.default_input_tokens), Decimal(options.default_output_tokens),
                                  Decimal(0), f"default volume: {_tokens(Decimal(options.default_input_tokens))} "
                                  f"input + {_tokens(Decimal(options.default_output_tokens))} output tokens/month",
                                  False)
                if feature and volumes is not None:
                    notes.append(f"feature `{feature}` ({why}) has no usage in the usage data")
            elif why == "path":
                notes.append(f"feature `{feature}` matched by file path/key")
            basis = vol.source
            for side, setting in (("old", ch.old), ("new", ch.new)):
                if setting is None:
                    continue
                price = model_price(setting.value)
                if price is None:
                    warn.append(f"model `{setting.value}` ({ch.file}:{setting.line}) is not in the LiteLLM price map: "
                                f"change listed as unpriced (check the name, or add billing.price_overrides)")
                    cost = None
                else:
                    cost = price.cost(int(vol.input_tokens), int(vol.output_tokens), int(vol.cache_read_tokens))
                if side == "old":
                    old_cost = cost
                else:
                    new_cost = cost
        elif s.kind in ("limit", "prompt"):
            model = (ch.new.model if ch.new else "") or (ch.old.model if ch.old else "")
            vol = volumes.volume(feature, model or None) if volumes and feature else None
            model = model or (volumes.top_model(feature) if volumes and feature and vol else "")
            old_cost, new_cost, basis, extra = price_limit_change(ch, vol, model, model_price(model) if model else None,
                                                                  warn, feature, volumes is not None)
            notes += extra
        else:
            basis = ""
            for side, setting in (("old", ch.old), ("new", ch.new)):
                if setting is None:
                    continue
                cost, basis = _instance_monthly(setting, instance_price, options, warn)
                if side == "old":
                    old_cost = cost
                else:
                    new_cost = cost
        priced = old_cost is not None and new_cost is not None
        delta = new_cost - old_cost if priced else None  # type: ignore[operator]
        rep = ChangeReport(
            file=ch.file, line=s.line, old_file=ch.old_file, kind=s.kind, key=s.key, status=ch.status,
            old=ch.old.value if ch.old else None, new=ch.new.value if ch.new else None,
            old_count=ch.old.count if ch.old else None, new_count=ch.new.count if ch.new else None,
            summary=_describe(ch), feature=feature, basis=basis, priced=priced,
            old_monthly_usd=None if old_cost is None else round(float(old_cost), 2),
            new_monthly_usd=None if new_cost is None else round(float(new_cost), 2),
            delta_monthly_usd=None if delta is None else round(float(delta), 2),
            delta_pct=_pct(delta, old_cost) if priced else None,  # type: ignore[arg-type]
            notes=notes)
        rows.append((rep, old_cost if priced else None, new_cost if priced else None))
    rows.sort(key=lambda r: (not r[0].priced, -abs(r[0].delta_monthly_usd or 0), r[0].file, r[0].line))
    old_total = sum((r[1] for r in rows if r[1] is not None), Decimal(0))
    new_total = sum((r[2] for r in rows if r[2] is not None), Decimal(0))
    delta_total = new_total - old_total
    pct = _pct(delta_total, old_total)
    unpriced = sum(1 for r in rows if not r[0].priced)
    increase = delta_total > Decimal(str(options.min_delta_usd)) and delta_total > 0
    exceeded = increase and (pct is None or pct > options.threshold_pct)
    if options.fail_on_unpriced and unpriced:
        exceeded = True
    assumptions = [f"instances: on-demand prices x {options.hours_per_month:g} h/month x count, region "
                   f"{options.region} (regions without a price table use us-east-1)"]
    if any(r[0].kind == "model" for r in rows):
        assumptions.insert(0, "models: the same token volume priced at the old and the new model's LiteLLM "
                              "price-map rates (tokenizer differences ignored)")
    if default_used:
        assumptions.append(f"default volume where no usage matched: {options.default_input_tokens:,} input + "
                           f"{options.default_output_tokens:,} output tokens/month")
    return GateReport(
        source=source, threshold_pct=options.threshold_pct, min_delta_usd=options.min_delta_usd,
        exceeded=exceeded, headline=_headline(rows, delta_total, pct, unpriced),
        totals=Totals(old_monthly_usd=round(float(old_total), 2), new_monthly_usd=round(float(new_total), 2),
                      delta_monthly_usd=round(float(delta_total), 2), delta_pct=pct),
        changes=[r[0] for r in rows], unpriced=unpriced, warnings=list(dict.fromkeys(warn)), assumptions=assumptions)


def _headline(rows: list, delta: Decimal, pct: float | None, unpriced: int) -> str:
    if not rows:
        return "No cost-relevant changes"
    if unpriced == len(rows):
        return f"{unpriced} cost-relevant change{'s' if unpriced > 1 else ''} could not be priced"
    money = f"{'+' if delta >= 0 else '-'}${abs(delta):,.2f}/month"
    if pct is None:
        return f"Projected new cost: {money}" if delta > 0 else "Projected cost unchanged"
    if delta > 0:
        return f"Projected cost increase: {fmt_pct(pct)} ({money})"
    if delta < 0:
        return f"Projected cost decrease: {fmt_pct(pct)} ({money})"
    return "Projected cost unchanged"
