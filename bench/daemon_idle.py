"""Benchmark: the idle daemon's footprint.

Starts `costwarden run` as a subprocess against an in-process moto server seeded with the demo
estate, and prints: time from exec to /readyz 200, RSS once ready, RSS and CPU over an idle
window after the first sweep. Targets (issue 6): < 200 MB RSS, near-zero idle CPU, ready < 3 s.

    python bench/daemon_idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status(port: int, path: str) -> int:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).status
    except Exception:  # noqa: BLE001
        return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="idle window to measure")
    args = ap.parse_args()

    from costwarden.agent.demo.estate import DEMO_ENV, seed_estate
    from tests.fakes.moto_server import RecordingMotoServer

    os.environ.update(DEMO_ENV)
    moto = RecordingMotoServer()
    moto.start()
    seed_estate(moto.endpoint)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp = Path(tempfile.mkdtemp())
    (tmp / "c.yml").write_text(json.dumps({"state_dir": str(tmp / "state"),
                                           "aws": {"regions": ["us-east-1", "us-west-2"], "endpoint_url": moto.endpoint}}))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "costwarden.agent.cli", "run", "-c", str(tmp / "c.yml"), "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while status(port, "/readyz") != 200:
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited with {proc.returncode}")
        time.sleep(0.02)
    ready_s = time.monotonic() - t0
    rss_ready = rss_mb(proc.pid)
    time.sleep(5)  # let the first sweep (scheduled at start) finish
    rss_after_sweep = rss_mb(proc.pid)
    c0, w0 = cpu_seconds(proc.pid), time.monotonic()
    peak = rss_after_sweep
    while time.monotonic() - w0 < args.seconds:
        time.sleep(1)
        peak = max(peak, rss_mb(proc.pid))
    cpu = cpu_seconds(proc.pid) - c0
    wall = time.monotonic() - w0
    proc.terminate()
    proc.wait(30)
    moto.stop()
    print(f"ready_seconds            {ready_s:8.2f}   (target < 3)")
    print(f"rss_mb_at_ready          {rss_ready:8.1f}")
    print(f"rss_mb_after_first_sweep {rss_after_sweep:8.1f}   (target < 200)")
    print(f"rss_mb_idle_peak         {peak:8.1f}")
    print(f"idle_cpu_percent         {100 * cpu / wall:8.2f}   over {wall:.0f} s")


if __name__ == "__main__":
    main()
