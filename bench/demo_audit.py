"""Benchmark: `costwarden audit --demo`, the newcomer's first impression, phase by phase.

Each run is a fresh interpreter (import cost is part of what a newcomer waits for) that calls the
real `audit` command with --demo and records when each phase ends: imports, the demo estate's
seeding (AWS fleet and metrics, AWS waste, billing files, the GCP fakes), the sweep (per provider:
the time between one policy's `detect:` progress line and the previous one is that policy's
collection and detection, which interleave) and the rest (table, teardown), plus the process's
wall and CPU seconds. It prints each run and the median; the target is under 10 s wall for the
whole command.

    python bench/demo_audit.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROVIDER_OF = {"aws": "aws", "gcp": "gcp", "k8s": "gcp"}  # the resource type's prefix -> group ("gcp": GCP + its cluster)


def _wrap(module: Any, name: str, label: str, spans: dict[str, float], *, context: bool = False) -> None:
    """Time `module.name` under `label` (summed over calls); a context manager is timed until entered."""
    fn = getattr(module, name, None)
    if fn is None:  # the demo's layout changed: that phase is simply not reported
        return

    if context:
        from contextlib import contextmanager

        @contextmanager
        def timed_cm(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            with fn(*a, **kw) as value:
                spans[label] = spans.get(label, 0.0) + time.perf_counter() - t
                yield value

        setattr(module, name, timed_cm)
        return

    def timed(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            spans[label] = spans.get(label, 0.0) + time.perf_counter() - t

    setattr(module, name, timed)


def one_run() -> dict[str, float]:
    """Run `audit --demo` once in this process; return {phase: seconds}."""
    import importlib

    t0 = time.perf_counter()
    spans: dict[str, float] = {}
    import costwarden.agent.cli.main  # noqa: F401 - the console script's import
    from costwarden.agent.cli import audit as audit_cmd

    spans["import: cli"] = time.perf_counter() - t0
    for mod, name, label, cm in [
        ("costwarden.agent.demo.estate", "seed_estate", "demo: aws fleet + metrics", False),
        ("costwarden.agent.demo.waste", "seed_waste", "demo: aws waste", False),
        ("costwarden.agent.demo.billing", "write_demo_billing", "demo: billing files", False),
        ("costwarden.agent.demo.gcp", "gcp_demo_estate", "demo: gcp fakes", True),
        ("costwarden.agent.cli.demo", "enter_demo_estate", "demo (wall)", False),
        ("costwarden.agent.engine.sweep", "run_sweep", "sweep (wall)", False),
    ]:
        _wrap(importlib.import_module(mod), name, label, spans, context=cm)
    spans["import: cli+sweep"] = time.perf_counter() - t0

    types: dict[str, str] = {}
    last = [0.0]

    def progress(msg: str) -> None:
        now = time.perf_counter()
        if msg.startswith("collect: ") and "(" in msg:  # "collect: NAME (aws.ec2) from ..."
            name, rest = msg[len("collect: "):].split(" (", 1)
            types[name] = rest.split(")", 1)[0]
            last[0] = now
        elif msg.startswith("detect: "):
            name = msg[len("detect: "):].split(":", 1)[0]
            group = PROVIDER_OF.get(types.get(name, "").split(".")[0], "billing+llm")
            key = f"sweep: {group}"
            spans[key] = spans.get(key, 0.0) + now - last[0]
            last[0] = now

    audit_cmd.progress_printer = lambda quiet: progress
    audit_cmd.audit(demo=True, output=Path(os.devnull), quiet=True)
    spans["total (in process)"] = time.perf_counter() - t0
    return spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child: one run, JSON out
    args = ap.parse_args()
    if args.one:
        spans = one_run()
        print("BENCH " + json.dumps(spans))
        return
    runs: list[dict[str, float]] = []
    for i in range(args.runs):
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, __file__, "--one"], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
        if proc.returncode != 0 or line is None:
            sys.exit(f"run {i + 1} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        spans = json.loads(line[len("BENCH "):])
        spans["total (process wall)"] = wall
        # CPU seconds of the run (all its threads): what the wall time would be on an idle core
        spans["total (process cpu)"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        runs.append(spans)
    keys = sorted({k for r in runs for k in r}, key=lambda k: (k.startswith("total"), k))
    print(f"{'phase':30} " + " ".join(f"{'run ' + str(i + 1):>7}" for i in range(len(runs))) + f" {'median':>7}")
    for k in keys:
        vals = [r.get(k, float("nan")) for r in runs]
        print(f"{k:30} " + " ".join(f"{v:7.2f}" for v in vals) + f" {statistics.median(vals):7.2f}")
    print(f"load average: {os.getloadavg()[0]:.2f} (on shared cores the wall times follow the load: compare runs "
          "taken under similar load, or the CPU seconds)")


if __name__ == "__main__":
    main()
