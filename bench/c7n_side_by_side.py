"""Benchmark: Costwarden beside Cloud Custodian (c7n) on one estate, in one run (issue #20).

Cloud Custodian 0.9.53 is installed in its own virtualenv, in a cache directory outside the
repository ($COSTWARDEN_BENCH_CACHE, default ~/.cache/costwarden-bench/c7n), the first time.
One moto server on 127.0.0.1, in this process, holds the estate of bench/side_by_side/estate.py
(GPU instances with and without GPU metrics, tags, volumes, addresses) and counts every request
it receives, by operation: the API calls are counted where they arrive, for both tools alike.

Both tools sweep it dry-run with equivalent policies (bench/side_by_side/policies/):
  set 1, one idle-GPU policy;  set 2, four policies (idle GPU, a tag value and a missing tag,
  unassociated Elastic IPs, unattached volumes under a max-resources guard).
`costwarden audit -p ... --format json` and `custodian run --dryrun --cache-period 0` each run as
a fresh process, alternately (one untimed warm-up each, then --runs timed runs each); Costwarden
keeps its state database between runs, as a user's repeated audits do. Each is
started by a small launcher process that reports the child's wall time, CPU time (user + sys)
and peak RSS from wait4(); a child forked straight from this process would report this process's
peak RSS (the moto server and its estate) as its own, since Linux carries ru_maxrss over exec.
Before the figures mean anything, both tools must report the resources the estate was built to
contain, and no mutating call may reach the server.

    python bench/c7n_side_by_side.py [--runs 3] [--sets 1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "side_by_side"
sys.path.insert(0, str(ROOT))

C7N_VERSION = "0.9.53"
FAKE_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
            "AWS_DEFAULT_REGION": "us-east-1"}
SETS = {"1": ("idle-gpu", "one idle-GPU policy"), "2": ("four", "four policies (idle GPU, tags, EIPs, volumes)")}
# A c7n resource's id: an address's AllocationId first (moto gives an unassociated one InstanceId "")
ID_KEYS = ("AllocationId", "VolumeId", "InstanceId")


def cache_dir() -> Path:
    return Path(os.environ.get("COSTWARDEN_BENCH_CACHE", Path.home() / ".cache" / "costwarden-bench"))


def custodian() -> Path:
    """The custodian executable of a c7n==C7N_VERSION virtualenv, created on first use."""
    venv = cache_dir() / "c7n"
    exe = venv / "bin" / "custodian"
    marker = venv / f"c7n-{C7N_VERSION}.installed"
    if not marker.exists():
        print(f"installing c7n=={C7N_VERSION} into {venv} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"c7n=={C7N_VERSION}"], check=True)
        marker.touch()
    return exe


# -- the launcher: a small process between this one and each tool ---------------------------------

def launch(out: str, cmd: list[str]) -> int:
    """Run `cmd`; write its wall time, CPU time and peak RSS (wait4) as JSON to `out`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    Path(out).write_text(json.dumps({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime,
                                     "sys": ru.ru_stime, "rss_mb": ru.ru_maxrss / 1024, "rc": rc}))
    return 0


def measured(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    try:
        with log.open("w") as lf:
            subprocess.run([sys.executable, "-S", "-I", str(Path(__file__).resolve()), "--launch", str(out), "--", *cmd],
                           env=env, stdout=lf, stderr=subprocess.STDOUT, check=True, cwd=log.parent)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


# -- the two tools ------------------------------------------------------------------------------

def run_costwarden(policy: Path, work: Path, env: dict[str, str], regions: list[str],
                   state: Path) -> tuple[dict[str, Any], dict[str, set[str]]]:
    cfg = work / "costwarden.yml"
    cfg.write_text(json.dumps({"aws": {"regions": regions}}))
    report = work / "costwarden.json"
    cmd = [sys.executable, "-m", "costwarden.agent.cli", "audit", "-c", str(cfg), "-p", str(policy),
           "--state-dir", str(state), "--format", "json", "-o", str(report), "-q"]
    fig = measured(cmd, env, work / "costwarden.log")
    found: dict[str, set[str]] = {}
    if report.exists():
        for f in json.loads(report.read_text()).get("findings", []):
            found.setdefault(f["policy"], set()).add(f["resource_id"])
    return fig, found


def run_c7n(policy: Path, work: Path, env: dict[str, str], regions: list[str],
            state: Path) -> tuple[dict[str, Any], dict[str, set[str]]]:
    out = work / "c7n-out"
    cmd = [str(custodian()), "run", "--dryrun", "--cache-period", "0", "-s", str(out),
           *[a for r in regions for a in ("-r", r)], str(policy)]
    fig = measured(cmd, env, work / "c7n.log")
    found: dict[str, set[str]] = {}
    for res in out.glob("**/resources.json"):
        name = res.parent.name  # out/<policy>/ (one region) or out/<region>/<policy>/ (several)
        for r in json.loads(res.read_text()):
            found.setdefault(name, set()).add(next(r[k] for k in ID_KEYS if k in r))
    return fig, found


# -- one policy set, both tools, alternately ------------------------------------------------------

def vocab_ready() -> str | None:
    """None when Costwarden loads the set-2 policies; else why it cannot (the c7n vocabulary)."""
    from costwarden.policies.loader import load_policies
    from costwarden.state.errors import CostwardenError

    try:
        load_policies([HERE / "policies" / "costwarden-four.yml"])
    except CostwardenError as exc:
        return str(exc)
    return None


def bench_set(key: str, runs: int, server: Any, env: dict[str, str], expected: dict[str, set[str]],
              regions: list[str]) -> dict[str, Any]:
    import yaml

    from tests.fakes.moto_server import mutating

    stem = SETS[key][0]
    tools = {"costwarden": (run_costwarden, HERE / "policies" / f"costwarden-{stem}.yml"),
             "c7n": (run_c7n, HERE / "policies" / f"c7n-{stem}.yml")}
    names = {p["name"] for p in yaml.safe_load(tools["c7n"][1].read_text())["policies"]}
    want = {name: ids for name, ids in expected.items() if name in names}
    rows: dict[str, list[dict[str, Any]]] = {"costwarden": [], "c7n": []}
    problems: list[str] = []
    order = ["c7n", "costwarden"]
    # Costwarden keeps its SQLite database between runs, as a user's audits do: the warm-up creates
    # it (the one-time schema migration is not what is compared). c7n's describe cache is off.
    state = Path(tempfile.mkdtemp(prefix="side-by-side-state-"))
    for i in range(runs + 1):  # run 0 is the untimed warm-up of each
        for tool in (order if i % 2 == 0 else order[::-1]):
            fn, policy = tools[tool]
            with tempfile.TemporaryDirectory(prefix=f"side-by-side-{tool}-") as tmp:
                server.clear_calls()
                fig, found = fn(policy, Path(tmp), env, regions, state)
                calls = list(server.calls)
                if fig["rc"] != 0:
                    problems.append(f"{tool} exited {fig['rc']}: " + (Path(tmp) / f"{tool}.log").read_text()[-800:])
            if mut := mutating(calls):
                problems.append(f"{tool} sent mutating calls: {mut}")
            if found != {k: v for k, v in want.items() if v}:
                problems.append(f"{tool} found {sorted((k, sorted(v)) for k, v in found.items())}, "
                                f"expected {sorted((k, sorted(v)) for k, v in want.items() if v)}")
            if i:
                rows[tool].append({**fig, "api_calls": dict(sorted(Counter(calls).items()))})
            print(f"  set {key} run {i or 'warm-up'} {tool:10s} wall {fig['wall']:.2f} s  cpu {fig['cpu']:.2f} s  "
                  f"rss {fig['rss_mb']:.0f} MB  calls {len(calls)}", file=sys.stderr, flush=True)
    shutil.rmtree(state, ignore_errors=True)
    return {"set": key, "title": SETS[key][1], "runs": rows, "problems": sorted(set(problems))}


def summary(r: dict[str, Any]) -> dict[str, Any]:
    med = {t: {m: statistics.median(x[m] for x in rows) for m in ("wall", "cpu", "rss_mb")}
           for t, rows in r["runs"].items()}
    calls = {t: rows[-1]["api_calls"] for t, rows in r["runs"].items()}
    for t in med:
        med[t]["api_calls"] = sum(calls[t].values())
    ratio = {m: med["costwarden"][m] / med["c7n"][m] for m in ("wall", "cpu", "rss_mb", "api_calls")}
    return {"median": med, "api_calls_by_operation": calls, "ratio": ratio,
            "targets_met": {"wall <= c7n": ratio["wall"] <= 1, "api calls <= c7n": ratio["api_calls"] <= 1,
                            "rss <= 1.25x": ratio["rss_mb"] <= 1.25}}


def print_set(r: dict[str, Any]) -> None:
    print(f"\nset {r['set']}: {r['title']}  ({len(r['runs']['c7n'])} timed runs each, alternating)")
    for t in ("costwarden", "c7n"):
        rows = r["runs"][t]
        print(f"  {t:11s} wall " + " ".join(f"{x['wall']:.2f}" for x in rows)
              + "  | cpu " + " ".join(f"{x['cpu']:.2f}" for x in rows)
              + "  | peak rss MB " + " ".join(f"{x['rss_mb']:.0f}" for x in rows))
    s = r["summary"]
    m = s["median"]
    print(f"  {'median':11s} {'costwarden':>12s} {'c7n':>10s} {'ratio':>8s}")
    for k, label, fmt in (("wall", "wall s", "{:.2f}"), ("cpu", "cpu s", "{:.2f}"), ("rss_mb", "peak RSS MB", "{:.0f}"),
                          ("api_calls", "API calls", "{:.0f}")):
        print(f"  {label:11s} {fmt.format(m['costwarden'][k]):>12s} {fmt.format(m['c7n'][k]):>10s} "
              f"{s['ratio'][k]:7.2f}x")
    for t in ("costwarden", "c7n"):
        print(f"  API calls by operation, {t}: "
              + ", ".join(f"{k} {v}" for k, v in s["api_calls_by_operation"][t].items()))
    print("  targets: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in s["targets_met"].items()))
    for p in r["problems"]:
        print(f"  PROBLEM: {p}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each tool per set (after one warm-up each)")
    ap.add_argument("--sets", default="1,2", help="policy sets to run: 1, 2 or 1,2")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    os.environ.update(FAKE_ENV)
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"  # moto's AMI catalogue: ~1 s a region, for nothing
    import boto3

    from bench.side_by_side.estate import REGIONS, seed
    from tests.fakes.moto_server import RecordingMotoServer

    custodian()
    server = RecordingMotoServer()
    server.start()
    results = []
    try:
        session = boto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench", aws_session_token="bench")
        seeded = seed(session, server.endpoint)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("COSTWARDEN_", "AWS_", "LANGCHAIN_", "LANGSMITH_"))}
        env.update(FAKE_ENV, AWS_ENDPOINT_URL=server.endpoint, LITELLM_LOCAL_MODEL_COST_MAP="True",
                   HOME=str(cache_dir() / "home"))  # c7n's and boto3's per-user files stay out of the real home
        (cache_dir() / "home").mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()
        for key in args.sets.split(","):
            if key == "2" and (why := vocab_ready()):
                print(f"\nset 2: {SETS['2'][1]}: unavailable, Costwarden does not load its policies yet: {why}")
                continue
            r = bench_set(key, args.runs, server, env, seeded.expected, REGIONS)
            r["summary"] = summary(r)
            results.append(r)
            print_set(r)
    finally:
        server.stop()
    print(f"\nload average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; "
          f"c7n {C7N_VERSION}, Python {sys.version.split()[0]}")
    if args.json:
        print(json.dumps(results, default=sorted, indent=2))
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--launch" and sys.argv[3] == "--":
        sys.exit(launch(sys.argv[2], sys.argv[4:]))
    sys.exit(main())
