"""Benchmark: the pull-request gate on a large repository.

Builds a git repository of 5,000 files (Python with boto3 calls, TypeScript, YAML Helm-style
values, JSON settings and CloudFormation templates, Terraform, Markdown; about half carry model
ids or instance types), commits it, changes ten files on a branch (model swaps, instance types in
Python, Helm values, CloudFormation and Terraform, a count, plus files with no cost-relevant
change) and times `costwarden gate` as a user runs it: a fresh process, imports included.
Target (issue 9): < 2 s wall time. Also prints the in-process time of the gate itself.

    python bench/gate_bench.py [--files 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "claude-3-5-haiku-20241022", "gemini-2.0-flash"]
TYPES = ["g5.xlarge", "g4dn.xlarge", "c5.large", "m5.xlarge", "inf2.xlarge"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def body(i: int, changed: bool = False) -> tuple[str, str]:
    """(relative path, text) of file i; `changed` gives the head version of a touched file."""
    m = MODELS[i % len(MODELS)]
    d = f"svc{i % 50:02d}/mod{i % 7}"
    kind = i % 6
    if kind == 0:
        new = "gpt-4-turbo" if changed else m
        box = "p4d.24xlarge" if changed else TYPES[i % len(TYPES)]
        return f"{d}/client_{i}.py", (f'"""Service {i}."""\n\n\ndef call(client, text):\n'
                                      f'    return client.chat.completions.create(model="{new}", messages=[text])\n'
                                      f'\n\ndef worker(ec2):\n    return ec2.run_instances(ImageId="ami-1", '
                                      f'InstanceType="{box}", MinCount=1, MaxCount=2)\n'
                                      + "".join(f"\n\ndef helper_{j}(x):\n    return x + {j}\n" for j in range(20)))
    if kind == 1:
        new = "gpt-4o" if changed else m
        return f"{d}/chat_{i}.ts", (f'export const reply = (c: any) => c.chat({{ model: "{new}", messages: [] }});\n'
                                    + "".join(f"export const f{j} = (x: number) => x * {j};\n" for j in range(30)))
    if kind == 2:
        new = "o3" if changed else m
        node = "p4d.24xlarge" if changed else TYPES[i % len(TYPES)]
        return f"{d}/llm_{i}.yaml", (f"feature: f{i}\nllm:\n  model: {new}\n  temperature: 0.{i % 9}\n"
                                     f"server:\n  replicaCount: 2\n  nodeSelector:\n"
                                     f"    node.kubernetes.io/instance-type: {node}\n"
                                     + "".join(f"option_{j}: value {j}\n" for j in range(30)))
    if kind == 3:
        t = "p4d.24xlarge" if changed else TYPES[i % len(TYPES)]
        return f"infra/{d}/main_{i}.tf", (f'resource "aws_instance" "box_{i}" {{\n  ami = "ami-{i:08d}"\n'
                                          f'  instance_type = "{t}"\n  count = {3 if changed else 1}\n'
                                          f'  tags = {{\n    Name = "box-{i}"\n  }}\n}}\n')
    if kind == 4 and (i // 6) % 4 == 0:  # a synthesised CloudFormation template (cdk.out)
        t = "p4d.24xlarge" if changed else TYPES[i % len(TYPES)]
        return f"cdk.out/{d}/Stack{i}.template.json", json.dumps({"Resources": {
            f"Box{i}": {"Type": "AWS::EC2::Instance", "Properties": {"InstanceType": t, "ImageId": {"Ref": "Ami"}}},
            f"Cfg{i}": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {"ProductionVariants": [
                {"VariantName": "main", "InstanceType": "ml." + t, "InitialInstanceCount": 2}]}}}}, indent=1)
    if kind == 4:
        return f"{d}/settings_{i}.json", json.dumps({"name": f"s{i}", "retries": 3 + (1 if changed else 0),
                                                     "items": list(range(40))}, indent=2)
    return f"docs/{d}/page_{i}.md", f"# Page {i}\n\n" + ("Lorem ipsum dolor sit amet. " * 40) + ("\nedit\n" if changed else "")


def build(repo: Path, n: int) -> list[int]:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@example.com")
    for i in range(n):
        rel, text = body(i)
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "pr")
    touched = [7 * k * 6 + (k % 6) for k in range(10)]  # ten files, every kind, spread over the tree
    for i in touched:
        rel, text = body(i, changed=True)
        (repo / rel).write_text(text)
    git(repo, "commit", "-q", "-am", "ten changes")
    return touched


def timed(cmd: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float], subprocess.CompletedProcess]:
    """Wall and CPU (user + system) seconds of `runs` fresh processes; CPU is what a busy machine cannot inflate."""
    walls, cpus = [], []
    proc = None
    for _ in range(runs):
        r0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
        walls.append(time.perf_counter() - t)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    assert proc is not None
    return walls, cpus, proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="costwarden-gate-bench-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        t0 = time.perf_counter()
        build(repo, args.files)
        tracked = len(git(repo, "ls-files").splitlines())
        changed = len(git(repo, "diff", "--name-only", "main", "pr").splitlines())
        print(f"repository: {tracked} files, diff touches {changed} (built in {time.perf_counter() - t0:.1f} s)")

        env = {k: v for k, v in os.environ.items() if not k.startswith("COSTWARDEN_")}
        env["PYTHONPATH"] = str(ROOT)
        gate_cmd = [sys.executable, "-m", "costwarden.agent.cli", "gate", "--repo", str(repo), "--base", "main", "--head", "pr",
                    "--format", "json"]
        walls, cpus, proc = timed(gate_cmd, env, args.runs)
        if proc.returncode == 2:
            print(proc.stderr)
            return 1
        doc = json.loads(proc.stdout)
        print(f"costwarden gate (fresh process): median {statistics.median(walls):.2f} s wall "
              f"(min {min(walls):.2f}, max {max(walls):.2f}), {statistics.median(cpus):.2f} s CPU, "
              f"over {args.runs} runs; exit {proc.returncode}")
        print(f"  {len(doc['changes'])} cost-relevant changes, {doc['unpriced']} unpriced; {doc['headline']}")
        base_walls, base_cpus, _ = timed([sys.executable, "-c", "import costwarden.agent.cli.main"], env, args.runs)
        print(f"  of which `import costwarden.agent.cli.main` alone: median {statistics.median(base_walls):.2f} s wall, "
              f"{statistics.median(base_cpus):.2f} s CPU (load average now {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs)")

        from costwarden.agent.cli.gate import run_gate
        from costwarden.policies.gate import GateOptions

        run_gate(repo, "main", "pr", GateOptions())  # warm: price map and tables loaded once per process
        inproc = []
        for _ in range(args.runs):
            t = time.perf_counter()
            run_gate(repo, "main", "pr", GateOptions())
            inproc.append(time.perf_counter() - t)
        print(f"gate logic in-process (git + parse + price, warm): median {statistics.median(inproc) * 1000:.0f} ms")
        target = statistics.median(walls) < 2.0
        print(f"target < 2 s: {'met' if target else 'MISSED'}")
        return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
