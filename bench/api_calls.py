"""Benchmark: the cloud API calls of one sweep of the shipped packs (issue #20, "repeated calls").

Runs `costwarden audit --demo --format json` in a fresh process (moto and the GCP fakes on
127.0.0.1, every shipped policy, one AWS account in two regions) and prints the calls it sent by
service and operation, as the audit counts them (tools/calls.py). The target, from Cloud
Custodian's behaviour on the same packs: one GetCallerIdentity per account and one
DescribeInstances per region, whatever the number of policies. Exit 1 if a target is missed.

    python bench/api_calls.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = {("sts", "GetCallerIdentity"): 1, ("ec2", "DescribeInstances"): 2}  # 1 account, 2 demo regions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        proc = subprocess.run([sys.executable, "-m", "costwarden.agent.cli", "audit", "--demo", "--format", "json",
                               "-q", "--state-dir", str(Path(tmp) / "state"), "-o", str(out)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return 1
        doc = json.loads(out.read_text())
    counts = {(c["service"], c["operation"]): c["count"] for c in doc["api_calls"]}
    if args.json:
        print(json.dumps([{"service": s, "operation": o, "count": n} for (s, o), n in counts.items()], indent=2))
    else:
        for (service, operation), n in counts.items():
            print(f"{service:<12} {operation:<28} {n:>4}")
        print(f"{'total':<41} {sum(counts.values()):>4}")
    missed = [f"{s}.{o}: {counts.get((s, o), 0)} > {n}" for (s, o), n in TARGETS.items() if counts.get((s, o), 0) > n]
    for m in missed:
        print(f"target missed: {m}", file=sys.stderr)
    return 1 if missed or doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
