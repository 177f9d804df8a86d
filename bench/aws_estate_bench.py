"""Benchmark: one dry-run sweep of a 5,000-instance EC2 estate (issue 3, "benchmark at scale").

Builds the estate on 127.0.0.1, spread over regions: EC2 in the lean fake of tests/fakes/ec2.py
(or, with `--ec2 moto`, a moto server seeded with RunInstances in batches of 500; moto pages
DescribeInstances by reservation and serializes ~5 ms per instance, so it neither exercises
pagination nor finishes 5,000 instances in the time budget), CloudWatch in the lean fake of
tests/fakes/cloudwatch.py (moto's GetMetricData costs O(queries x stored datapoints) and
enforces no limit) with 9 days of hourly metrics per instance, STS in moto. Then ONE sweep of
the shipped `idle-gpu-instances` policy runs through `costwarden.agent.engine.sweep.run_sweep`, dry-run, in a
fresh process that reaches the servers only through AWS_ENDPOINT_URL(_EC2, _CLOUDWATCH), so
the peak RSS (VmHWM) is the sweeping process's own, not the fakes'. Every server records each
request: API calls by operation and mutating calls (which must be 0) are counted where they
arrive, not in our code. The run fails (exit 1) if a mutating call arrives, the sweep reports an
error, or the findings differ from the idle, unprotected GPU instances the estate was built with.

Prints the sweep's wall time and CPU time, its peak RSS, GetMetricData calls per instance
(target <= 0.01), API calls by operation, mutating calls, findings against the estate's known
idle instances, and the load average (the machine is shared, so timings move with it).

    python bench/aws_estate_bench.py [--instances 5000] [--regions us-east-1,us-west-2] [--ec2 fake|moto] [--json]
    python bench/aws_estate_bench.py --compare     # 1,000 and 5,000, each in fresh processes
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AMI = "ami-0c0ffee0c0ffee000"  # moto does not check AMIs
RUN_BATCH = 500  # instances per RunInstances call while seeding
HISTORY_HOURS = 9 * 24  # seeded history: the policy's 7-day lookback plus slack on both sides
VARIANTS = 16  # distinct value arrays per profile; series share them, so 20k series cost little
FAKE_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
            "AWS_DEFAULT_REGION": "us-east-1"}

# (instance type, weight): GPU families the idle-gpu detector wants, plus CPU types it must ignore.
GPU_TYPES = [("g5.xlarge", 30), ("g4dn.xlarge", 20), ("g5.2xlarge", 15), ("g6.xlarge", 15), ("p4d.24xlarge", 12),
             ("p5.48xlarge", 8)]
CPU_TYPES = [("m5.xlarge", 60), ("c5.2xlarge", 40)]
GPU_SHARE = 0.85


@dataclass(frozen=True)
class Profile:
    """How an instance behaves, and so what the sweep must conclude about it."""

    name: str
    weight: float
    gpu: str | None  # nvidia_smi_utilization_gpu: idle | busy | spiky | None (no CloudWatch agent)
    cpu: str  # idle | busy
    stopped: bool = False
    protected: bool = False
    finding: bool = False  # idle-gpu must report it (GPU instances only)


PROFILES = [
    Profile("gpu-busy", 0.78, "busy", "busy"),
    Profile("gpu-idle", 0.08, "idle", "idle", finding=True),
    Profile("gpu-idle-protected", 0.01, "idle", "idle", protected=True),
    Profile("gpu-spiky", 0.02, "spiky", "busy"),  # idle most hours, busy 10%: the p95 keeps it off the list
    Profile("no-agent-idle", 0.03, None, "idle", finding=True),  # CPU and network stand in, medium confidence
    Profile("no-agent-busy", 0.06, None, "busy"),
    Profile("stopped", 0.02, "idle", "idle", stopped=True),  # inventoried, not a candidate
]
ENVS = [("prod", 0.5), ("staging", 0.3), ("dev", 0.2)]


@dataclass
class Planned:
    """One instance of the estate: where, what, and how it behaves."""

    region: str
    instance_type: str
    env: str
    profile: Profile
    instance_id: str = ""

    @property
    def gpu(self) -> bool:
        return any(t == self.instance_type for t, _ in GPU_TYPES)


def plan_estate(n: int, regions: list[str], seed: int = 7) -> list[Planned]:
    """The estate, deterministic for a given size, so runs are comparable."""
    rng = random.Random(seed)
    gpu_w = [w for _, w in GPU_TYPES]
    cpu_w = [w for _, w in CPU_TYPES]
    out = []
    for i in range(n):
        region = regions[i % len(regions)]
        if rng.random() < GPU_SHARE:
            itype = rng.choices([t for t, _ in GPU_TYPES], gpu_w)[0]
            profile = rng.choices(PROFILES, [p.weight for p in PROFILES])[0]
        else:
            itype = rng.choices([t for t, _ in CPU_TYPES], cpu_w)[0]
            profile = rng.choice([PROFILES[0], PROFILES[1]])  # busy or idle: the detector must ignore both
        env = rng.choices([e for e, _ in ENVS], [w for _, w in ENVS])[0]
        out.append(Planned(region, itype, env, profile))
    return out


def _grouped(items: list[Planned], key: Any) -> dict[Any, list[Planned]]:
    groups: dict[Any, list[Planned]] = {}
    for p in items:
        groups.setdefault(key(p), []).append(p)
    return groups


def _values(kind: str, rng: random.Random, hours: int) -> list[float]:
    import math

    out = []
    for h in range(hours):
        diurnal = 0.5 + 0.5 * math.sin((h % 24) / 24 * 2 * math.pi)
        if kind == "idle":
            v = max(0.0, rng.gauss(0.6, 0.4))
        elif kind == "spiky":
            v = 70 + 20 * rng.random() if h % 10 == 0 else max(0.0, rng.gauss(0.6, 0.4))
        else:
            v = min(100.0, 55 + 35 * diurnal + rng.gauss(0, 4))
        out.append(round(v, 3))
    return out


def seed_moto(endpoint: str, estate: list[Planned]) -> None:
    """RunInstances per region and type in batches of 500, CreateTags / StopInstances per 1,000 ids."""
    import boto3

    session = boto3.Session(aws_access_key_id=FAKE_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=FAKE_ENV["AWS_SECRET_ACCESS_KEY"])
    ec2 = {r: session.client("ec2", region_name=r, endpoint_url=endpoint) for r in {p.region for p in estate}}
    for (region, itype), group in _grouped(estate, lambda p: (p.region, p.instance_type)).items():
        team = [{"Key": "team", "Value": f"team-{itype.split('.')[0]}"}]
        for i in range(0, len(group), RUN_BATCH):
            chunk = group[i:i + RUN_BATCH]
            res = ec2[region].run_instances(ImageId=AMI, InstanceType=itype, MinCount=len(chunk), MaxCount=len(chunk),
                                            TagSpecifications=[{"ResourceType": "instance", "Tags": team}])
            for p, inst in zip(chunk, res["Instances"]):
                p.instance_id = inst["InstanceId"]
    for (region, env, protected), group in _grouped(estate, lambda p: (p.region, p.env, p.profile.protected)).items():
        tags = [{"Key": "env", "Value": env}] + ([{"Key": "costwarden:protect", "Value": "true"}] if protected else [])
        for i in range(0, len(group), 1000):
            ec2[region].create_tags(Resources=[p.instance_id for p in group[i:i + 1000]], Tags=tags)
    for region, group in _grouped([p for p in estate if p.profile.stopped], lambda p: p.region).items():
        for i in range(0, len(group), 1000):
            ec2[region].stop_instances(InstanceIds=[p.instance_id for p in group[i:i + 1000]])


def seed_ec2_fake(fake: Any, estate: list[Planned]) -> None:
    """The same estate straight into the lean EC2 fake: one reservation per 500 alike instances."""
    key = lambda p: (p.region, p.instance_type, p.env, p.profile.protected, p.profile.stopped)  # noqa: E731
    for (region, itype, env, protected, stopped), group in _grouped(estate, key).items():
        tags = {"team": f"team-{itype.split('.')[0]}", "env": env}
        if protected:
            tags["costwarden:protect"] = "true"
        for i in range(0, len(group), RUN_BATCH):
            chunk = group[i:i + RUN_BATCH]
            ids = fake.add_instances(region, itype, len(chunk), tags=tags, state="stopped" if stopped else "running")
            for p, iid in zip(chunk, ids):
                p.instance_id = iid


def seed_metrics(cw: Any, estate: list[Planned], now_hour: int) -> None:
    """Hourly history for every instance, straight into the CloudWatch fake; series share arrays."""
    rng = random.Random(11)
    start = now_hour - HISTORY_HOURS * 3600 + 2 * 3600  # two hours past the current one: no gap at the end
    arrays = {kind: [_values(kind, rng, HISTORY_HOURS) for _ in range(VARIANTS)] for kind in ("idle", "busy", "spiky")}
    net = {"idle": [[round(2e5 * rng.random(), 1) for _ in range(HISTORY_HOURS)] for _ in range(VARIANTS)],
           "busy": [[round(4e9 * rng.random(), 1) for _ in range(HISTORY_HOURS)] for _ in range(VARIANTS)]}
    for n, p in enumerate(estate):
        v = n % VARIANTS
        dims = {"InstanceId": p.instance_id}
        cpu = p.profile.cpu
        cw.put_series(p.region, "AWS/EC2", "CPUUtilization", dims, start=start, period=3600, values=arrays[cpu][v])
        cw.put_series(p.region, "AWS/EC2", "NetworkIn", dims, start=start, period=3600, values=net[cpu][v])
        cw.put_series(p.region, "AWS/EC2", "NetworkOut", dims, start=start, period=3600,
                      values=net[cpu][(v + 1) % VARIANTS])
        if p.gpu and p.profile.gpu:
            cw.put_series(p.region, "CWAgent", "nvidia_smi_utilization_gpu", dims, start=start, period=3600,
                          values=arrays[p.profile.gpu][v])


class TimedApp:
    """WSGI middleware inside the recording moto server: server-side seconds per operation, to tell
    the fakes' time from the sweeping process's own."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seconds: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from tests.fakes.moto_server import operation_of

        body = environ["wsgi.input"].getvalue()  # the recorder has already buffered it
        t0 = time.perf_counter()
        out = list(self.app(environ, start_response))
        with self.lock:
            self.seconds[operation_of(environ, body)] += time.perf_counter() - t0
        return out


# -- the sweeping process -----------------------------------------------------------------------

def _proc_status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def sweep_child(state_dir: str, regions: list[str], trace: bool) -> None:
    """Runs in a fresh process: the shipped idle-gpu policy, one dry-run sweep, figures as JSON."""
    from costwarden.agent.config import Settings
    from costwarden.agent.engine.sweep import run_sweep
    from costwarden.policies.loader import load_policies

    settings = Settings(state_dir=Path(state_dir), aws={"regions": regions})
    policies = [lp for lp in load_policies([]) if lp.name == "idle-gpu-instances"]
    # Peak RSS is VmHWM, the high-water mark of this process image. Not getrusage's ru_maxrss: Linux
    # carries that across fork+exec, so a child reports its parent's peak (here, the fakes') if higher.
    rss_before, hwm_before = _proc_status_mb("VmRSS"), _proc_status_mb("VmHWM")
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    if trace:
        import tracemalloc

        tracemalloc.start()
    t0 = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(msg: str) -> None:
        stage = msg.split(":", 1)[0]
        marks[stage] = _proc_status_mb("VmHWM")  # peak so far: collect opens the streams, detect drains them
        print(f"  · {msg}", file=sys.stderr, flush=True)

    result = run_sweep(settings, policies, dry_run=True, trigger="bench", progress=progress)
    wall = time.perf_counter() - t0
    traced_peak = None
    if trace:
        import tracemalloc

        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    by_conf = Counter(f.evidence.get("signal", "?").split(" ")[0] for f in result.findings)
    print(json.dumps({
        "wall_seconds": wall,
        "cpu_seconds": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "rss_before_sweep_mb": rss_before,
        "peak_rss_before_sweep_mb": hwm_before,
        "peak_rss_mb": _proc_status_mb("VmHWM"),
        "peak_rss_through_detect_mb": marks.get("detect"),
        "tracemalloc_peak_mb": traced_peak,
        "inventoried": result.inventoried,
        "findings": len(result.findings),
        "findings_by_signal": dict(by_conf),
        "actions": len(result.actions),
        "errors": result.errors,
        "warnings": len(result.warnings),
        "client_api_calls": result.api_calls,
        "refused_calls": result.refused_calls,
    }))


# -- one size, end to end -----------------------------------------------------------------------

def run_estate(n: int, regions: list[str], trace: bool, quiet: bool, ec2_backend: str) -> dict[str, Any]:
    os.environ.update(FAKE_ENV)
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"  # an AMI lookup per instance otherwise: 10 ms each
    from tests.fakes.cloudwatch import CloudWatchFake
    from tests.fakes.ec2 import Ec2Fake
    from tests.fakes.moto_server import RecordingMotoServer, mutating

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    moto = RecordingMotoServer()  # STS always; EC2 too with --ec2 moto
    timed = TimedApp(moto.recorder.app)
    moto.recorder.app = timed
    moto.start()
    cw = CloudWatchFake().start()
    ec2 = Ec2Fake().start() if ec2_backend == "fake" else None
    try:
        estate = plan_estate(n, regions)
        now_hour = int(datetime.now(timezone.utc).timestamp()) // 3600 * 3600
        say(f"seeding {n:,} instances in the {'EC2 fake' if ec2 else 'moto server'} and "
            f"{HISTORY_HOURS // 24} days of hourly metrics in the CloudWatch fake")
        t0 = time.perf_counter()
        if ec2 is not None:
            seed_ec2_fake(ec2, estate)
        else:
            seed_moto(moto.endpoint, estate)
        t1 = time.perf_counter()
        seed_metrics(cw, estate, now_hour)
        seeded = {"ec2_seconds": t1 - t0, "metrics_seconds": time.perf_counter() - t1}
        for server in (moto, cw, ec2):
            if server is not None:
                server.clear_calls()
        timed.seconds.clear()
        say(f"seeded in {seeded['ec2_seconds']:.1f} s (EC2) + {seeded['metrics_seconds']:.1f} s (metrics); sweeping")
        env = {**os.environ, "AWS_ENDPOINT_URL": moto.endpoint, "AWS_ENDPOINT_URL_CLOUDWATCH": cw.endpoint,
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        if ec2 is not None:
            env["AWS_ENDPOINT_URL_EC2"] = ec2.endpoint
        for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            env.pop(k, None)
        env = {k: v for k, v in env.items() if not k.startswith("COSTWARDEN_")}
        with tempfile.TemporaryDirectory(prefix="costwarden-bench-") as tmp:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--sweep-child", tmp, "--regions", ",".join(regions)]
            if trace:
                cmd.append("--tracemalloc")
            proc = subprocess.run(cmd, env=env, cwd=str(ROOT), stdout=subprocess.PIPE,
                                  stderr=None if not quiet else subprocess.DEVNULL, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"sweep process failed with exit code {proc.returncode}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        server_calls = moto.calls + cw.calls + (ec2.calls if ec2 else [])
        by_op = dict(sorted(Counter(server_calls).items()))
        pages = list(ec2.page_sizes) if ec2 else []
        ec2_seconds = ec2.server_seconds if ec2 else 0.0
    finally:
        for server in (ec2, cw, moto):
            if server is not None:
                server.stop()
    gpu_running = sum(1 for p in estate if p.gpu and not p.profile.stopped)
    gmd = by_op.get("GetMetricData", 0)
    return {
        "instances": n, "regions": regions, "gpu_candidates": gpu_running, "ec2_backend": ec2_backend,
        "describe_instances_pages": pages,
        "expected_findings": sum(1 for p in estate if p.gpu and p.profile.finding),
        "protected": sum(1 for p in estate if p.profile.protected),
        "seed_seconds": seeded,
        "sweep": child,
        "api_calls_by_operation": by_op,
        "mutating_calls": mutating(server_calls),
        "get_metric_data_calls": gmd,
        "get_metric_data_per_instance": gmd / n,
        "get_metric_data_per_candidate": gmd / max(1, gpu_running),
        "max_queries_in_a_call": max(cw.queries_per_call, default=0),
        "datapoints_served": cw.stats["datapoints"],
        "server_seconds": {"moto " + k: round(v, 2) for k, v in sorted(timed.seconds.items())}
        | {"cloudwatch-fake GetMetricData": cw.stats["server_ms"] / 1000}
        | ({"ec2-fake DescribeInstances": round(ec2_seconds, 2)} if ec2_backend == "fake" else {}),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "cpus": os.cpu_count(),
    }


def print_report(r: dict[str, Any]) -> None:
    s = r["sweep"]
    la = lambda t: " ".join(f"{x:.2f}" for x in t)  # noqa: E731
    print(f"Costwarden AWS estate benchmark: {r['instances']:,} EC2 instances in {', '.join(r['regions'])}, "
          f"{r['gpu_candidates']:,} running GPU instances, 7 days of hourly metrics")
    print(f"load average (1/5/15 min)   before {la(r['load_average_before'])}, after {la(r['load_average_after'])} "
          f"on {r['cpus']} CPUs")
    print(f"seeding                     {r['seed_seconds']['ec2_seconds']:.1f} s EC2 ({r['ec2_backend']}), "
          f"{r['seed_seconds']['metrics_seconds']:.1f} s metrics (CloudWatch fake)")
    print(f"sweep wall time             {s['wall_seconds']:8.1f} s   (sweep process CPU {s['cpu_seconds']:.1f} s)")
    print("  of which the fakes served " + ", ".join(f"{k} {v:.1f} s" for k, v in r["server_seconds"].items()))
    print(f"peak RSS, sweeping process  {s['peak_rss_mb']:8.1f} MB  (after imports, before the sweep: "
          f"{s['rss_before_sweep_mb']:.1f} MB; peak through collect + detect: "
          f"{s['peak_rss_through_detect_mb']:.1f} MB)")
    if s.get("tracemalloc_peak_mb") is not None:
        print(f"tracemalloc peak            {s['tracemalloc_peak_mb']:8.1f} MB  (Python allocations during the sweep)")
    print(f"GetMetricData / instance    {r['get_metric_data_per_instance']:8.4f}     (target <= 0.01; "
          f"{r['get_metric_data_calls']} calls; {r['get_metric_data_per_candidate']:.4f} per GPU candidate; "
          f"largest call {r['max_queries_in_a_call']} queries; {r['datapoints_served']:,} datapoints)")
    if r["describe_instances_pages"]:
        print(f"DescribeInstances pages     {len(r['describe_instances_pages']):8d}     (instances per page: "
              f"{r['describe_instances_pages']})")
    print("API calls by operation      " + ", ".join(f"{k} {v}" for k, v in r["api_calls_by_operation"].items())
          + "   (counted at the servers)")
    print(f"mutating calls              {len(r['mutating_calls']):8d}     (received by the servers)")
    print(f"findings                    {s['findings']:8d}     (estate holds {r['expected_findings']} idle, "
          f"unprotected GPU instances; {r['protected']} protected; by signal {s['findings_by_signal']})")
    print(f"inventoried                 {s['inventoried']:8d}     errors {len(s['errors'])}, "
          f"client-side refused calls {sum(s['refused_calls'].values())}")


def check(r: dict[str, Any]) -> list[str]:
    """What must hold for the figures to mean anything."""
    s = r["sweep"]
    problems = []
    if r["mutating_calls"]:
        problems.append(f"mutating calls reached the servers: {r['mutating_calls'][:5]}")
    if s["errors"]:
        problems.append(f"sweep errors: {s['errors'][:3]}")
    if s["findings"] != r["expected_findings"]:
        problems.append(f"{s['findings']} findings, expected {r['expected_findings']}")
    if s["inventoried"] != r["instances"]:
        problems.append(f"inventoried {s['inventoried']} of {r['instances']} instances")
    return problems


def compare(sizes: list[int], regions: list[str], trace: bool, ec2_backend: str) -> int:
    """Each size in a fresh process (fakes and sweep alike), so neither run inherits the other's heap."""
    rows = []
    for n in sizes:
        print(f"running {n:,} instances in a fresh process ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--instances", str(n), "--regions", ",".join(regions),
               "--json", "--quiet", "--ec2", ec2_backend] + (["--tracemalloc"] if trace else [])
        proc = subprocess.run(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, text=True)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{n} instances: bench process failed with exit code {proc.returncode}")
        rows.append(json.loads(proc.stdout))
    print(f"{'instances':>10} {'findings':>9} {'peak RSS':>10} {'to detect':>10} {'pre-sweep':>10} {'tracemalloc':>12} "
          f"{'wall':>7} {'CPU':>7} {'GMD/inst':>9} {'mutating':>9} {'load 1m':>8}")
    for r in rows:
        s = r["sweep"]
        tm = f"{s['tracemalloc_peak_mb']:.1f} MB" if s.get("tracemalloc_peak_mb") is not None else "-"
        print(f"{r['instances']:>10,} {s['findings']:>9} {s['peak_rss_mb']:>7.1f} MB "
              f"{s['peak_rss_through_detect_mb']:>7.1f} MB {s['rss_before_sweep_mb']:>7.1f} MB {tm:>12} "
              f"{s['wall_seconds']:>6.1f}s {s['cpu_seconds']:>6.1f}s {r['get_metric_data_per_instance']:>9.4f} "
              f"{len(r['mutating_calls']):>9} {r['load_average_after'][0]:>8.2f}")
    a, b = rows[0], rows[-1]
    for label, key in (("peak RSS", "peak_rss_mb"), ("peak RSS through collect + detect", "peak_rss_through_detect_mb"),
                       ("tracemalloc peak", "tracemalloc_peak_mb")):
        x, y = a["sweep"].get(key), b["sweep"].get(key)
        if x is not None and y is not None:
            print(f"{label}, {a['instances']:,} -> {b['instances']:,} instances "
                  f"({b['instances'] / a['instances']:.0f}x): {y - x:+.1f} MB ({100 * (y - x) / x:+.1f}%)")
    bad = [f"{r['instances']}: {p}" for r in rows for p in check(r)]
    for p in bad:
        print(f"CHECK FAILED {p}", file=sys.stderr)
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=5000, help="EC2 instances in the estate")
    ap.add_argument("--regions", default="us-east-1,us-west-2", help="comma-separated; instances spread evenly")
    ap.add_argument("--compare", action="store_true", help="run 1,000 and 5,000 instances in fresh processes")
    ap.add_argument("--ec2", choices=["fake", "moto"], default="fake",
                    help="who serves EC2: the lean fake (pages by instance, fast) or moto (slow past ~1,000 instances)")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slows the sweep)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON document")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--sweep-child", metavar="STATE_DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    if not regions:
        raise SystemExit("--regions: name at least one region")
    if args.sweep_child:
        sweep_child(args.sweep_child, regions, args.tracemalloc)
        return
    if args.compare:
        raise SystemExit(compare([1000, 5000], regions, args.tracemalloc, args.ec2))
    if args.instances < 1:
        raise SystemExit("--instances: must be at least 1")
    r = run_estate(args.instances, regions, args.tracemalloc, args.quiet, args.ec2)
    if args.json:
        print(json.dumps(r, default=str))
    else:
        print_report(r)
    problems = check(r)
    for p in problems:
        print(f"CHECK FAILED {p}", file=sys.stderr)
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
