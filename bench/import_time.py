"""Benchmark: start-up cost of the one-shot commands (issue #20, item 5: lean start).

Runs each command N times in fresh interpreters and prints, per command, the wall time and CPU
time (user + sys, from wait4) of the whole process, the import time `python -X importtime`
reports (the sum of the top-level imports' cumulative times), how many modules were loaded, and
which heavy packages were. `audit` runs against a moto server on 127.0.0.1 holding no
resources, so what it measures is start-up, one DescribeInstances per region, and exit.

With `--before REF` the same commands also run on the tree of git revision REF (extracted to a
temporary directory that shadows the installed package on sys.path), alternating with the
current tree, and the table shows both and their ratio.

    python bench/import_time.py [--runs 5] [--before main]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HEAVY = ("langgraph", "langchain_core", "langsmith", "litellm", "google.cloud", "boto3", "sqlalchemy", "alembic",
         "duckdb", "jinja2", "pydantic_settings", "costwarden.policies.gate")
PROBE = ("import json, os, sys\nfrom costwarden.agent.cli.main import main\n"
         "rc = main(sys.argv[1:])\n"
         f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
         "sys.stderr.write('\\n@probe ' + json.dumps({'rc': rc, 'modules': len(sys.modules), 'heavy': heavy}) + '\\n')\n")


def commands(tmp: Path) -> dict[str, list[str]]:
    policy = tmp / "idle-gpu.yml"
    policy.write_text("policies:\n  - name: idle-gpu\n    resource: aws.ec2\n    mode: report\n"
                      "    filters:\n      - type: idle-gpu\n")
    cfg = tmp / "config.yml"
    cfg.write_text(json.dumps({"aws": {"regions": ["us-east-1", "us-west-2"]}}))
    return {
        "--help": ["--help"],
        "policies validate": ["policies", "validate", str(ROOT / "policies" / "packs")],
        "gate": ["gate", "--repo", str(ROOT), "--base", "HEAD~1", "--head", "HEAD", "--format", "json"],
        "report --help": ["report", "--help"],
        "audit (empty estate)": ["audit", "-c", str(cfg), "-p", str(policy), "--state-dir", str(tmp / "state"),
                                 "--format", "json", "-q"],
    }


def one(args: list[str], env: dict[str, str], importtime: bool) -> dict[str, Any]:
    """One fresh interpreter: wall, CPU (wait4), and either the probe's module list or -X importtime."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", PROBE, *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    err = proc.stderr.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    lines = err.decode().splitlines()
    probe = next((json.loads(ln[len("@probe "):]) for ln in reversed(lines) if ln.startswith("@probe ")), {})
    out = {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, **probe}
    if importtime:  # "import time: self | cumulative | name": top-level lines are indented by one space
        top = [int(ln.split("|")[1]) for ln in lines
               if ln.startswith("import time:") and "|" in ln and ln.split("|")[2].startswith(" ")
               and not ln.split("|")[2].startswith("  ") and ln.split("|")[1].strip().isdigit()]
        out["import_s"] = sum(top) / 1e6
    return out


def tree_of(ref: str, into: Path) -> Path:
    """The package tree at `ref`, importable as `costwarden` from the returned sys.path entry."""
    src = into / "src"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryFile() as fh:
        fh.write(archive)
        fh.seek(0)
        with tarfile.open(fileobj=fh) as tar:
            tar.extractall(src, filter="data")
    root = into / "path"
    root.mkdir()
    (root / "costwarden").symlink_to(src, target_is_directory=True)
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--before", help="git revision to compare with (e.g. main)")
    args = ap.parse_args()
    from tests.fakes.moto_server import RecordingMotoServer

    server = RecordingMotoServer()
    server.start()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COSTWARDEN_", "AWS_", "PYTHONPATH"))}
    base.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                AWS_ENDPOINT_URL=server.endpoint, LITELLM_LOCAL_MODEL_COST_MAP="True")
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="import-time-") as tmp:
            trees = {"after": base}
            if args.before:
                trees = {"before": {**base, "PYTHONPATH": str(tree_of(args.before, Path(tmp)))}, "after": base}
            for label, env in trees.items():
                (Path(tmp) / label).mkdir()
            for label, env in trees.items():  # the state database exists before audit is timed
                one(commands(Path(tmp) / label)["audit (empty estate)"], env, importtime=False)
            for name in commands(Path(tmp) / "after"):
                results[name] = {label: [] for label in trees}
                for i in range(args.runs):
                    for label, env in (trees.items() if i % 2 == 0 else reversed(trees.items())):
                        argv = commands(Path(tmp) / label)[name]
                        run = one(argv, env, importtime=False)
                        run["import_s"] = one(argv, env, importtime=True)["import_s"]
                        results[name][label].append(run)
    finally:
        server.stop()
    report(results, args.runs, args.before)
    return 0


def report(results: dict[str, dict[str, list[dict[str, Any]]]], runs: int, before: str | None) -> None:
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    print(f"start-up of the one-shot commands: median of {runs} fresh interpreters each"
          + (f"; before = {before}, after = this tree, alternating" if before else ""))
    print(f"{'command':22s} {'tree':7s} {'wall s':>7s} {'cpu s':>7s} {'imports s':>10s} {'modules':>8s}  heavy packages")
    for name, by_tree in results.items():
        for label, rows in by_tree.items():
            heavy = rows[-1].get("heavy", [])
            print(f"{name:22s} {label:7s} {med(rows, 'wall'):7.2f} {med(rows, 'cpu'):7.2f} {med(rows, 'import_s'):10.2f} "
                  f"{rows[-1].get('modules', 0):8d}  {', '.join(heavy) or '-'}")
        if before:
            b, a = by_tree["before"], by_tree["after"]
            print(f"{'':22s} {'ratio':7s} {med(a, 'wall') / med(b, 'wall'):6.2f}x {med(a, 'cpu') / med(b, 'cpu'):6.2f}x "
                  f"{med(a, 'import_s') / med(b, 'import_s'):9.2f}x")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
