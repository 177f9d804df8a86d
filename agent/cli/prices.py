"""`costwarden prices show|refresh`: what an instance type costs and where that figure comes from,
and a way to fetch Price List API figures ahead of a sweep.

`show` answers exactly as a sweep would (overrides > Price List cache > shipped tables, per
`pricing.source`), so a surprising figure in a finding can be traced. `refresh` asks the API now,
whatever the cache's age and whatever `pricing.source` says, for the types named or, with none,
for every type already in the cache; several types go in one request.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from costwarden.agent.config import Settings

prices_app = typer.Typer(no_args_is_help=True, help="On-demand prices: show one, or refresh them from the AWS Price List API.")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file.", envvar="COSTWARDEN_CONFIG")]
StateOpt = Annotated[Optional[Path], typer.Option("--state-dir", help="Where the price cache lives (with the database).")]
RegionOpt = Annotated[Optional[list[str]], typer.Option("--region", "-r", help="Region (repeatable); default: aws.regions.")]


def _settings(config: Path | None, state_dir: Path | None) -> Settings:
    from costwarden.agent.config import load_settings

    return load_settings(config, state_dir=state_dir)


def _money(v: Decimal) -> str:
    return f"${v:,.4f}" if v >= 1 else f"${v:,.6f}"


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"warning: {line}\n")


@prices_app.command("show")
def show(instance_type: Annotated[str, typer.Argument(help="e.g. p5en.48xlarge, ml.g5.xlarge, ebs:gp3, a2-highgpu-1g")],
         region: Annotated[Optional[str], typer.Option("--region", "-r", help="Default: the first of aws.regions.")] = None,
         provider: Annotated[str, typer.Option(help="aws, gcp or k8s.")] = "aws",
         config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """The hourly price a sweep would use for one type, and its source. Exit 1 when unpriced."""
    from costwarden.state.domain import HOURS_PER_MONTH
    from costwarden.tools.pricing import PriceBook

    settings = _settings(config, state_dir)
    where = region or (settings.aws.regions[0] if provider == "aws" else "us-central1" if provider == "gcp" else "")
    book = PriceBook.from_settings(settings.pricing, settings.state_dir)
    hourly, source = book.hourly(provider, where, instance_type)
    _warn(book.warnings)
    if hourly is None:
        hint = source if source != "unpriced" else (
            "in neither pricing.overrides nor the shipped tables" + (
                "" if settings.pricing.source == "price-list-api" or provider != "aws"
                else "; pricing.source: price-list-api would ask the AWS Price List API"))
        sys.stdout.write(f"{instance_type} in {where or provider}: unpriced ({hint})\n")
        raise typer.Exit(1)
    unit = " per GB" if instance_type.startswith(("ebs:", "ebs-snapshot:")) else ""
    sys.stdout.write(f"{instance_type} in {where or provider}: {_money(hourly)}/h{unit}, "
                     f"${hourly * HOURS_PER_MONTH:,.2f}/month{unit} at 730 h ({source})\n")


@prices_app.command("refresh")
def refresh(instance_types: Annotated[Optional[list[str]], typer.Argument(
                help="EC2 or SageMaker (ml.*) instance types; none: every type already in the cache.")] = None,
            region: RegionOpt = None, config: ConfigOpt = None, state_dir: StateOpt = None) -> None:
    """Fetch on-demand prices from the AWS Price List API into the cache in state_dir, now."""
    from costwarden.agent.config import ConfigError
    from costwarden.tools.aws.price_cache import split_key
    from costwarden.tools.aws.price_list import AwsPriceList
    from costwarden.tools.aws.session import aws_call_log
    from costwarden.tools.pricing import PriceBook

    settings = _settings(config, state_dir)
    live_settings = settings.pricing.model_copy(update={"source": "price-list-api"})
    log = aws_call_log()
    live = PriceBook.from_settings(live_settings, settings.state_dir, call_log=log).price_list
    assert isinstance(live, AwsPriceList)  # from_settings builds one for source price-list-api
    if instance_types:
        regions = region or list(settings.aws.regions)
        wanted = [(r, t) for r in regions for t in instance_types]
    else:
        wanted = [(split_key(k)[1], split_key(k)[2]) for k in live.cache.keys()]
        wanted = [(r, t) for r, t in wanted if not region or r in region]
        if not wanted:
            raise ConfigError("prices refresh", f"nothing to refresh: the cache {live.cache.path} holds no "
                                                f"price{' for ' + ', '.join(region) if region else ''}; name instance "
                                                f"types, e.g. `costwarden prices refresh p5en.48xlarge`")
    entries = live.refresh(wanted)
    _warn(live.warnings)
    tables = PriceBook()  # the shipped figures alone, to show what the API changed
    for key, entry in sorted(entries.items(), key=lambda kv: (split_key(kv[0])[1], split_key(kv[0])[2])):
        _, r, t = split_key(key)
        was, _src = tables.hourly("aws", r, t)
        shipped = f"shipped tables: {_money(was)}/h" if was is not None else "not in the shipped tables"
        now = "no on-demand product in this region" if entry.usd_per_hour is None else f"{_money(entry.usd_per_hour)}/h"
        sys.stdout.write(f"{r:<15} {t:<22} {now:<40} ({shipped})\n")
    calls = sum(log.calls.values())
    sys.stdout.write(f"{len(entries)} prices fetched in {calls} GetProducts request{'s' if calls != 1 else ''}; "
                     f"cached in {live.cache.path} for {settings.pricing.cache_ttl_days:g} days\n")
    if settings.pricing.source != "price-list-api":
        sys.stderr.write("note: pricing.source is 'tables', so sweeps do not read this cache; "
                         "set pricing.source: price-list-api to use it\n")
