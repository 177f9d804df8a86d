"""Benchmark: one tick of 1,000 accounts fanned out to 1, 2 and 4 worker processes (issue 21).

The estate: N accounts (default 1,000) reached by STS AssumeRole, each with 3 EC2 instances (an
idle GPU, a busy GPU, a CPU one) and 9 days of metrics, in the lean many-accounts fake of
tests/fakes/accounts.py, which answers every request after a fixed `--latency` (default 200 ms,
an AWS API round trip) so the sweep is I/O-bound as it is against AWS. The queue and the store
are a throwaway database on the local PostgreSQL (127.0.0.1:5432).

For each worker count: start `costwarden run --role worker` processes (each
`fanout.worker_concurrency` jobs at once), wait until they are registered, enqueue ONE tick
(`enqueue_tick`: one job per account), and time it until the run is closed by its last part.
Counted at the fake: DescribeInstances per account (exactly 1 per tick is the target), API
calls per account. Then the crash run: 2 workers, live mode (the idle GPU instances are
stopped), one worker SIGKILLed when about a third of the tick is done; the scheduler's
stalled-job check (here the bench's loop, as the daemon's) hands its jobs to the other.
Printed: accounts lost (parts not done), accounts whose result was recorded twice, accounts
whose sweep was re-run because its worker died mid-job (a second AssumeRole at the fake: each
job attempt assumes its role once; in live mode DescribeInstances also serves the stop action's
checks, so it cannot count sweeps there), and StopInstances per account (at most 1 each, one
idle instance per account, is the target).

    python bench/fanout.py [--accounts 1000] [--workers 1,2,4] [--latency 0.2] [--concurrency 4] [--no-crash]
    python bench/fanout.py --moto-probe   # moto's per-request cost, the reason for the lean fake
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _workers_alive(store: Any) -> int:
    from sqlalchemy import text

    with store.engine.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar() or 0)


def _start(world: Any, n: int, tag: str) -> list[subprocess.Popen[bytes]]:
    procs = [world.worker(f"{tag}-{i}") for i in range(n)]
    deadline = time.monotonic() + 120
    while _workers_alive(world.store) < n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"workers did not start; see {world.config.parent}/{tag}-*.log")
        time.sleep(0.2)
    return procs


def _stop(procs: list[subprocess.Popen[bytes]], store: Any) -> None:
    from sqlalchemy import text

    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)
    with store.engine.begin() as c:  # a SIGKILLed worker leaves its row; the next round counts live ones
        c.execute(text("DELETE FROM procrastinate_workers"))


def one_tick(world: Any, workers: int) -> dict[str, Any]:
    procs = _start(world, workers, f"w{workers}")
    world.fake.clear_calls()
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    run_id = world.tick()
    run = world.wait_closed(run_id, timeout=3600)
    wall = time.monotonic() - t0
    load = (load, os.getloadavg()[0])  # the machine is shared: the load at the tick's start and end
    _stop(procs, world.store)
    parts = [p for p in world.store.parts_of(run_id)]
    described = world.fake.per_account("DescribeInstances")
    calls = sum(world.fake.counts.values())
    return {"workers": workers, "wall_s": wall, "status": run.status, "parts_done": sum(p.status == "done" for p in parts),
            "once": sum(1 for a in world.accounts if described.get(a) == 1), "twice": sum(1 for n in described.values() if n > 1),
            "missing": sum(1 for a in world.accounts if not described.get(a)), "calls_per_account": calls / len(world.accounts),
            "findings": len(world.store.findings_for_run(run_id)), "load": load,
            "by_op": Counter({op: n for (_a, op), n in world.fake.counts.items()})}


def crash_tick(world: Any) -> dict[str, Any]:
    from costwarden.agent.server.fanout import retry_stalled

    procs = _start(world, 2, "crash")
    world.fake.clear_calls()
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    run_id = world.tick()
    killed_at = None
    n = len(world.accounts)
    while world.store.get_run(run_id).status == "running":
        if killed_at is None:
            done = sum(p.status == "done" for p in world.store.parts_of(run_id))
            if done >= n // 3:
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
                killed_at = done
        else:
            retry_stalled(world.settings)
        time.sleep(0.25)
    wall = time.monotonic() - t0
    _stop(procs, world.store)
    parts = world.store.parts_of(run_id)
    attempts = world.fake.per_account("AssumeRole")  # one per job attempt (a job assumes its role once)
    stops = world.fake.per_account("StopInstances")
    actions = world.store.actions_for_run(run_id)
    return {"wall_s": wall, "load": (load, os.getloadavg()[0]), "killed_after_parts": killed_at, "status": world.store.get_run(run_id).status,
            "lost": sum(p.status != "done" for p in parts), "recorded_twice": 0 if len(parts) == n else len(parts) - n,
            "retried_parts": sum(p.attempts > 1 for p in parts),
            "re_swept_at_fake": sum(1 for v in attempts.values() if v > 1),
            "missing_at_fake": sum(1 for a in world.accounts if not attempts.get(a)),
            "stops_max_per_account": max(stops.values(), default=0), "stops": sum(stops.values()),
            "actions": Counter(a.status for a in actions),
            "findings": len(world.store.findings_for_run(run_id)),
            "findings_unique": len({f.resource_id for f in world.store.findings_for_run(run_id)})}


def moto_probe(n: int = 20) -> None:
    """moto's own cost per AssumeRole + RunInstances + DescribeInstances in a fresh account, on this machine."""
    import boto3

    from tests.fakes.moto_server import RecordingMotoServer

    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"})
    srv = RecordingMotoServer()
    srv.start()
    try:
        sts = boto3.client("sts", endpoint_url=srv.endpoint)
        t0 = time.perf_counter()
        for i in range(n):
            c = sts.assume_role(RoleArn=f"arn:aws:iam::{200000000000 + i}:role/r", RoleSessionName="probe")["Credentials"]
            ec2 = boto3.client("ec2", endpoint_url=srv.endpoint, aws_access_key_id=c["AccessKeyId"],
                               aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
            ec2.run_instances(ImageId="ami-0c0ffee0c0ffee000", InstanceType="g5.xlarge", MinCount=3, MaxCount=3)
            ec2.describe_instances()
        per = (time.perf_counter() - t0) / n
    finally:
        srv.stop()
    print(f"moto: {per * 1000:.0f} ms per account to assume a role, launch 3 instances and describe them (serial, "
          f"load {os.getloadavg()[0]:.1f}): seeding 1,000 accounts alone ~{per * 1000:.0f} s, and every sweep call "
          f"would then share moto's one process with the workers; the lean fake answers in microseconds plus "
          f"--latency")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--latency", type=float, default=0.2, help="seconds the fake waits before each answer")
    ap.add_argument("--concurrency", type=int, default=4, help="jobs per worker process")
    ap.add_argument("--no-crash", action="store_true")
    ap.add_argument("--moto-probe", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.moto_probe:
        moto_probe()
        return 0
    from tests.fanout_world import fanout_world
    from tests.pg import throwaway_database

    print(f"{args.accounts} accounts, 1 region, 3 instances each; fake latency {args.latency * 1000:.0f} ms; "
          f"{args.concurrency} jobs per worker; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    rows = []
    with throwaway_database("costwarden_fanout_bench") as url, tempfile.TemporaryDirectory() as d:
        with fanout_world(Path(d), url, n_accounts=args.accounts, regions=["us-east-1"], latency_s=args.latency,
                          concurrency=args.concurrency, heartbeat_s=2.0, stalled_s=6.0) as world:
            for w in [int(x) for x in args.workers.split(",")]:
                r = one_tick(world, w)
                rows.append(r)
                base = rows[0]["wall_s"] * rows[0]["workers"]
                print(f"workers={w}: sweep {r['wall_s']:.1f} s, speedup {base / r['wall_s']:.2f}x vs "
                      f"{rows[0]['workers']}; run {r['status']}, parts done {r['parts_done']}/{args.accounts}; "
                      f"accounts swept exactly once {r['once']}, twice {r['twice']}, missing {r['missing']} "
                      f"(DescribeInstances at the fake); API calls per account {r['calls_per_account']:.2f} "
                      f"{dict(r['by_op'])}; findings {r['findings']}; load {r['load'][0]:.2f} -> {r['load'][1]:.2f}")
        if not args.no_crash:
            with fanout_world(Path(d) / "crash", url, n_accounts=args.accounts, regions=["us-east-1"],
                              latency_s=args.latency, live=True, concurrency=args.concurrency, heartbeat_s=2.0,
                              stalled_s=6.0) as world:
                c = crash_tick(world)
                print(f"kill -9 of 1 of 2 workers after {c['killed_after_parts']} parts: tick {c['wall_s']:.1f} s, "
                      f"run {c['status']}; accounts lost {c['lost']}; results recorded twice {c['recorded_twice']}; "
                      f"parts retried by the other worker {c['retried_parts']} (their sweep re-ran: "
                      f"{c['re_swept_at_fake']} accounts saw a second AssumeRole, {c['missing_at_fake']} none); StopInstances {c['stops']}, at "
                      f"most {c['stops_max_per_account']} per account (1 idle instance each); actions "
                      f"{dict(c['actions'])}; findings {c['findings']} ({c['findings_unique']} distinct); "
                      f"load {c['load'][0]:.2f} -> {c['load'][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
