"""Benchmark: `costwarden audit` and `costwarden report` on third-party FOCUS 1.2 exports.

The exports come from `focus-data-toolkit` 0.14.1 (the `dev` extra): AWS, Azure and GCP, with
credits, one file per provider, moved to end at today's midnight so the wall-clock windows see
them, or left in May 2026 and judged with `--as-of 2026-05-31` (`--original-month`); see
tests/third_party_exports.py (past 50,000 rows per provider a file is several toolkit runs with
derived seeds). For each size, the commands run as a user runs them, each in a fresh process
(imports included):

- `costwarden report -f json` once per cost column (EffectiveCost, BilledCost), window 62 days;
- `costwarden audit -f json` with the spend-anomaly and budget policies (a one-cent budget per
  sub-account, so each one reports its month-to-date spend).

Printed per size: rows, generation and exact-sum times, each command's wall time and peak RSS
(ru_maxrss of the command, from wait4 in a small launcher process), whether the report totals
(both cost columns) and the budgets' month-to-date spend per sub-account equal the exact `Decimal`
sums to the cent, and the audit's monthly waste against the monthly bill. The 1,000,000-row run is for people (a few
minutes), not CI.

    python bench/third_party_focus.py [--rows 10000 1000000] [--seed 7] [--keep DIR] [--original-month]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.third_party_exports import Expected, shift_days_to_end_at, write_exports  # noqa: E402

CENT = Decimal("0.005") + Decimal("1e-9")
MAY_END = date(2026, 5, 31)  # the toolkit's month
POLICIES = {"policies": [
    {"name": "billing-anomalies", "resource": "billing.focus", "mode": "report", "filters": [{"type": "spend-anomaly"}]},
    {"name": "budgets", "resource": "billing.budget", "mode": "report", "filters": [{"type": "budget"}]},
]}


# Started through a small launcher: Linux carries a process's RSS high-water mark over fork and
# exec, so a command forked straight from this process (which holds the exact sums of a million
# rows) would report this process's peak as its own. The launcher is small when it spawns.
LAUNCHER = ("import os, sys; pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ); "
            "_, status, usage = os.wait4(pid, 0); open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def timed(cmd: list[str], cwd: Path) -> tuple[int, str, float, float]:
    """(exit code, stdout, wall seconds, peak RSS in MB) of one command in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COSTWARDEN_")}
    out, rss = cwd / "stdout.json", cwd / "maxrss.txt"
    t0 = time.perf_counter()
    with out.open("w") as fh:
        code = subprocess.run([sys.executable, "-c", LAUNCHER, str(rss), *cmd], cwd=cwd, stdout=fh,
                              stderr=subprocess.DEVNULL, env=env).returncode
    wall = time.perf_counter() - t0
    return code, out.read_text(), wall, int(rss.read_text()) / 1024


def close(reported: float | None, exact: Decimal) -> bool:
    return reported is not None and abs(Decimal(str(reported)) - exact) <= CENT


def bench(rows: int, seed: int, work: Path, original: bool = False) -> None:
    """One size: exports moved to end today (wall-clock windows), or left in May 2026 (`--as-of`)."""
    exe = str(Path(sys.executable).parent / "costwarden")
    now = datetime.now(timezone.utc)
    as_of = ["--as-of", MAY_END.isoformat()] if original else []
    first, last = (MAY_END.replace(day=1), MAY_END) if original else (now.date().replace(day=1), now.date())
    t0 = time.perf_counter()
    paths = write_exports(work / "exports", rows, seed, shift_days=0 if original else shift_days_to_end_at(now))
    gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    exp = Expected.of(paths)
    exact_s = time.perf_counter() - t0
    size_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"\n== {rows:,} rows, seed {seed}, {'May 2026, --as-of ' + str(MAY_END) if original else 'ending today'}: "
          f"{size_mb:,.0f} MB of CSV in {len(paths)} files; generated in "
          f"{gen:,.1f} s, exact Decimal sums in {exact_s:,.1f} s")
    subs = sorted({sub for sub, _day in exp.by_sub_account_day["EffectiveCost"]})
    budgets = [{"name": f"acct-{i}", "scope": "account", "value": s, "monthly_usd": 0.01} for i, s in enumerate(subs)]
    (work / "policies.yml").write_text(yaml.safe_dump(POLICIES))
    for col in ("EffectiveCost", "BilledCost"):
        cfg = work / f"{col}.yml"
        cfg.write_text(yaml.safe_dump({"billing": {"focus_paths": [str(p) for p in paths], "cost_column": col,
                                                   "usage_window_days": 62, "budgets": budgets}}))
        code, out, wall, rss = timed([exe, "report", "-c", str(cfg), "-f", "json", *as_of], work)
        doc = json.loads(out)
        total = doc["billing"]["total"].get("USD")
        ok = close(total, exp.total[col]) and doc["billing"]["rows"] == exp.rows
        print(f"report {col:13s}  exit {code}  {wall:6.1f} s  peak RSS {rss:6.0f} MB  total ${total:,.2f} "
              f"(exact ${exp.total[col]:,.2f}): totals match {'yes' if ok else 'NO'}")
        if col != "EffectiveCost":
            continue
        code, out, wall, rss = timed([exe, "audit", "-c", str(cfg), "-p", str(work / "policies.yml"), "-f", "json",
                                      "-q", "--state-dir", str(work / "state"), *as_of], work)
        doc = json.loads(out)
        month = exp.sub_account_spend(col, first, last)
        seen = {f["evidence"]["value"]: f["evidence"]["month_to_date_usd"] for f in doc["findings"]
                if f["detector"] == "budget"}
        ok = set(seen) == set(month) and all(close(seen[s], month[s]) for s in month)
        waste = Decimal(str(doc["totals"]["monthly_waste_usd"]))
        bill = exp.total[col] * Decimal(730) / Decimal(24 * 31)
        anomalies = sum(1 for f in doc["findings"] if f["detector"] == "spend-anomaly")
        print(f"audit  {col:13s}  exit {code}  {wall:6.1f} s  peak RSS {rss:6.0f} MB  {len(seen)} sub-account "
              f"budgets: month-to-date match {'yes' if ok else 'NO'}; {anomalies} anomalies, monthly waste "
              f"${waste:,.2f} vs monthly bill ${bill:,.2f} ({'below' if waste < bill else 'ABOVE'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="Write the exports here and keep them.")
    ap.add_argument("--original-month", action="store_true",
                    help="Leave the exports in May 2026 and run with --as-of 2026-05-31.")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    for rows in args.rows:
        if args.keep:
            bench(rows, args.seed, args.keep / str(rows), args.original_month)
        else:
            with tempfile.TemporaryDirectory(prefix="cw-third-party-") as tmp:
                bench(rows, args.seed, Path(tmp), args.original_month)


if __name__ == "__main__":
    main()
