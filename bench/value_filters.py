"""How fast plain filters judge an inventory: resources per second through a c7n-style policy.

Run: python bench/value_filters.py [N]  (prints figures; not a test)
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta, timezone

from costwarden.policies.loader import load_policy_data
from costwarden.state.domain import Resource

NOW = datetime(2026, 6, 15, tzinfo=timezone.utc)
POLICY = {"policies": [{"name": "bench", "resource": "aws.ec2", "filters": [
    {"tag:env": "dev"},
    {"not": [{"tag:team": "absent"}]},
    {"or": [{"type": "value", "key": "kind", "op": "regex", "value": "^(g5|p4d)\\."},
            {"type": "value", "key": "launch_time", "value_type": "age", "op": "gt", "value": 30}]},
    {"type": "value", "key": "state", "op": "in", "value": ["running", "pending"]},
]}]}


def main(n: int) -> None:
    lp = load_policy_data(POLICY, "bench.yml")[0]
    kinds = ["g5.xlarge", "m5.large", "p4d.24xlarge", "c6i.2xlarge"]
    rs = [Resource("aws", "1", "us-east-1", "aws.ec2", f"i-{i:08x}", kind=kinds[i % 4],
                   state="running" if i % 3 else "stopped",
                   tags={"env": "dev" if i % 2 else "prod", **({"team": "t"} if i % 5 else {})},
                   attrs={"launch_time": (NOW - timedelta(days=i % 60)).isoformat()}) for i in range(n)]
    start = time.perf_counter()
    passed = sum(1 for r in rs if lp.filters.passes(r, NOW))
    took = time.perf_counter() - start
    print(f"resources={n} passed={passed} seconds={took:.3f} per_second={n / took:,.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
