"""`costwarden gate`: the FinOps gate for pull requests.

Compares two revisions of a repository, finds the cost-relevant changes (LLM model ids,
instance types and counts, Kubernetes GPU requests) in the files the diff touches, prices them
per month and prints a PR comment (Markdown) or JSON. Exit 1 when the projected increase is
above the threshold, 0 otherwise, 2 on bad input (bad ref, not a repository, unreadable usage).

Kept light on purpose, since it runs on every push: it never imports litellm (prices come from
the JSON price map via tools.llm_prices), boto3 or langgraph, and reads git with one diff and
one `cat-file --batch` whatever the repository's size. The gate's own modules load inside the
command, so the other commands (and `costwarden --help`) never import them.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from costwarden.policies.gate import GateOptions, GateReport, UsageVolumes
    from costwarden.policies.gate.margins import TierUsage


class GateFormat(str, Enum):
    markdown = "markdown"
    json = "json"


def _volumes(paths: list[Path], window_days: int, tier_prices: dict[str, float] | None = None,
             model_overrides: dict | None = None) -> tuple[UsageVolumes, str, list[TierUsage]]:
    """Token volumes per feature over the last `window_days` of the usage data (not of the
    calendar: a CI job often reads an export that is a few days old); with tier prices, each
    priced tier's monthly cost and users too (the tier-margin check)."""
    from costwarden.policies.gate import UsageVolumes
    from costwarden.policies.gate.margins import tier_usage
    from costwarden.tools.llm.usage import UsageLog
    from costwarden.tools.llm_prices import PriceMap

    log = UsageLog([str(p) for p in paths])
    tiers: list[TierUsage] = []
    try:
        span = log.span()
        if span is None:
            return UsageVolumes([], 1, "empty usage data"), f"{', '.join(map(str, paths))}: no usage rows", []
        lo, hi = span
        start = max(lo, hi - timedelta(days=window_days))
        end = hi + timedelta(seconds=1)
        days = max(1.0, round((hi + timedelta(hours=1) - start).total_seconds() / 86400, 2))  # last hour counts
        groups = log.groups(start, end, prices=PriceMap(model_overrides) if tier_prices else None)
        if tier_prices:
            tiers = tier_usage(groups, days, log.tier_users(start, end), tier_prices)
    finally:
        log.close()
    label = f"{', '.join(p.name for p in paths)}, {days:g} days"
    return UsageVolumes(groups, days, label), (f"{', '.join(map(str, paths))}: {start:%Y-%m-%d} to {hi:%Y-%m-%d} "
                                               f"({days:g} days), scaled to 30.4 days/month"), tiers


def run_gate(repo_path: Path, base: str, head: str, options: GateOptions, usage: list[Path] | None = None,
             usage_window_days: int = 30, model_overrides: dict | None = None,
             instance_overrides: dict[str, float] | None = None,
             tier_prices: dict[str, float] | None = None) -> GateReport:
    """The whole gate without the CLI around it (the benchmark and tests call this)."""
    from costwarden.policies.gate import GateSource, diff_settings, evaluate, extract, file_format
    from costwarden.policies.gate.diff import Change, cancel_moves
    from costwarden.policies.gate.margins import with_tier_margins
    from costwarden.tools.gate_git import GitRepo
    from costwarden.tools.llm_prices import PriceMap
    from costwarden.tools.pricing import PriceBook

    repo = GitRepo(repo_path)
    base_c, head_c = repo.commit(base), repo.commit(head)
    from_c = repo.merge_base(base_c, head_c) or base_c
    changed = repo.changed_files(from_c, head_c)
    wanted = [f for f in changed if file_format(f.new_path or "") or file_format(f.old_path or "")]
    specs = [(from_c, f.old_path) for f in wanted if f.old_path] + [(head_c, f.new_path) for f in wanted if f.new_path]
    blobs = repo.read(specs)
    changes: list[Change] = []
    warnings: list[str] = []
    for f in wanted:
        old_text = blobs.get((from_c, f.old_path)) if f.old_path else ""
        new_text = blobs.get((head_c, f.new_path)) if f.new_path else ""
        if old_text is None or new_text is None:
            warnings.append(f"{f.new_path or f.old_path}: binary or larger than 2 MB; skipped")
            continue
        old, w1 = extract(f.old_path, old_text) if f.old_path else ([], [])
        new, w2 = extract(f.new_path, new_text) if f.new_path else ([], [])
        warnings += [f"{w} (base)" for w in w1] + [f"{w} (head)" for w in w2]
        renamed_from = f.old_path if f.status == "R" else None
        changes += diff_settings(f.new_path or f.old_path or "", old, new, renamed_from)
    changes = cancel_moves(changes)
    volumes, usage_label, tiers = (_volumes(usage, usage_window_days, tier_prices, model_overrides) if usage
                                   else (None, None, []))
    source = GateSource(base=base, head=head, base_commit=base_c, head_commit=head_c, compared_from=from_c,
                        files_changed=len(changed), files_scanned=len(wanted), usage=usage_label)
    report = evaluate(changes, model_price=PriceMap(model_overrides).price,
                      instance_price=PriceBook(instance_overrides).hourly, options=options, source=source,
                      volumes=volumes, warnings=warnings)
    return with_tier_margins(report, tiers)


def gate(base: Annotated[str, typer.Option("--base", help="Base revision (e.g. origin/main); the PR is compared "
                                                          "from its merge base with --head.")],
         head: Annotated[str, typer.Option("--head", help="Head revision.")] = "HEAD",
         repo: Annotated[Path, typer.Option("--repo", help="Repository path.")] = Path("."),
         usage: Annotated[Optional[list[Path]], typer.Option(
             "--usage", help="Token usage (OTel GenAI / LiteLLM spend-log JSON lines; repeatable) for observed "
                             "volumes per feature.")] = None,
         usage_window_days: Annotated[int, typer.Option(min=1, help="Days of usage data (ending at its last "
                                                                     "record) that make the volume.")] = 30,
         threshold_pct: Annotated[float, typer.Option(help="Fail (exit 1) when the total increase is above "
                                                           "this percentage.")] = 20.0,
         min_delta_usd: Annotated[float, typer.Option(help="...and above this many USD/month.")] = 0.0,
         default_input_tokens: Annotated[int, typer.Option(help="Monthly input tokens of a model setting "
                                                                "with no matching usage.")] = 1_000_000,
         default_output_tokens: Annotated[int, typer.Option(help="Monthly output tokens of a model setting "
                                                                 "with no matching usage.")] = 250_000,
         region: Annotated[str, typer.Option(help="Region for instance prices.")] = "us-east-1",
         gpu_hourly_usd: Annotated[Optional[float], typer.Option(
             help="Price of one GPU-hour for Kubernetes GPU requests whose node type is unknown.")] = None,
         fail_on_unpriced: Annotated[bool, typer.Option(help="Exit 1 when a change cannot be priced.")] = False,
         fmt: Annotated[GateFormat, typer.Option("--format", "-f", help="markdown (PR comment) or json.")]
         = GateFormat.markdown,
         output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to FILE.")] = None,
         config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (price overrides).",
                                                        envvar="COSTWARDEN_CONFIG")] = None) -> None:
    """FinOps gate for a pull request: price the cost-relevant changes between two revisions."""
    from pydantic import ValidationError

    from costwarden.policies.gate import GateOptions, render_json, render_markdown
    from costwarden.tools.errors import ToolError

    try:
        options = GateOptions(threshold_pct=threshold_pct, min_delta_usd=min_delta_usd,
                              default_input_tokens=default_input_tokens, default_output_tokens=default_output_tokens,
                              region=region, gpu_hourly_usd=gpu_hourly_usd, fail_on_unpriced=fail_on_unpriced)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ToolError(f"gate: --{str(e['loc'][0]).replace('_', '-')}: {e['msg']}") from None
    model_overrides, instance_overrides, tier_prices = None, None, None
    if config is not None:
        from costwarden.agent.config import load_settings

        settings = load_settings(config)
        model_overrides, instance_overrides = settings.billing.price_overrides, settings.pricing.overrides
        tier_prices = dict(settings.billing.tier_revenue_usd_month) or None  # the tier-margin check
        if not usage and settings.billing.usage_paths:  # the daemon's own usage data (globs) gives the volumes
            usage = [Path(p) for p in settings.billing.usage_paths]
    report = run_gate(repo, base, head, options, usage, usage_window_days, model_overrides, instance_overrides,
                      tier_prices)
    text = render_json(report) if fmt is GateFormat.json else render_markdown(report)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ToolError(f"{output}: cannot write: {exc.strerror}") from None
        sys.stderr.write(f"{report.headline}; {'above' if report.exceeded else 'within'} the threshold; "
                         f"report written to {output}\n")
    else:
        sys.stdout.write(text)
    if report.exceeded:
        raise typer.Exit(1)
