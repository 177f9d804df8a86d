"""Token-usage ingest benchmark: full read, incremental read after +1%, and DuckDB's bare scan.

    python bench/llm_ingest.py --spans 1000000 [--formats flat,otlp] [--dir DIR]

For each encoding (flat GenAI JSON lines as the OTLP spool writes them; OTLP JSON lines as the
Collector's file exporter writes them, 100 spans per line) it writes N spans, then in separate
child processes (so each peak RSS is its own) measures:

- bare: DuckDB's `read_json` (schema auto-detected) + GROUP BY feature/model over the file, the
  floor any reader of that file pays;
- full: a fresh rollup reading the whole file (tools/llm/rollup.py);
- incremental: the same rollup after 1% more spans were appended: only they are read.

Prints one line per measurement and a summary table; nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = 1_764_600_000_000_000_000  # ns
FEATURES = ["helpdesk", "summarize", "agent-chat", "docs-search", "triage"]
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5")]


def _attrs(rng: random.Random) -> dict[str, object]:
    provider, model = rng.choice(MODELS)
    return {"gen_ai.provider.name": provider, "gen_ai.operation.name": "chat", "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": rng.randint(50, 9000), "gen_ai.usage.output_tokens": rng.randint(10, 1500),
            "costwarden.feature": rng.choice(FEATURES), "costwarden.tier": rng.choice(["starter", "pro"]),
            "costwarden.tenant": f"t{rng.randrange(500)}", "costwarden.outcome": "success"}


def write_spans(path: Path, start: int, count: int, fmt: str, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("a", encoding="utf-8") as fh:
        if fmt == "flat":
            for i in range(start, start + count):
                fh.write(json.dumps({"traceId": f"{i:032x}", "spanId": f"{i:016x}",
                                     "startTimeUnixNano": str(T0 + i * 2_000_000_000), "attributes": _attrs(rng)}))
                fh.write("\n")
            return
        for b in range(start, start + count, 100):
            spans = [{"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": "chat", "kind": 3,
                      "startTimeUnixNano": str(T0 + i * 2_000_000_000),
                      "endTimeUnixNano": str(T0 + i * 2_000_000_000 + 900_000_000),
                      "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else
                                      {"stringValue": v}} for k, v in _attrs(rng).items()], "status": {}}
                     for i in range(b, min(b + 100, start + count))]
            fh.write(json.dumps({"resourceSpans": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "app"}}]},
                "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": spans}]}]}))
            fh.write("\n")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_bare(path: str, fmt: str) -> dict[str, float]:
    import duckdb

    con = duckdb.connect()
    t = time.perf_counter()
    if fmt == "flat":
        sql = (f"SELECT attributes.\"costwarden.feature\", attributes.\"gen_ai.request.model\", COUNT(*), "
               f"SUM(CAST(attributes.\"gen_ai.usage.input_tokens\" AS BIGINT)) FROM read_json('{path}') GROUP BY ALL")
    else:
        sql = (f"SELECT list_filter(s.attributes, lambda a: a.key = 'costwarden.feature')[1].value.stringValue AS f, "
               f"COUNT(*) FROM (SELECT unnest(ss.spans) AS s FROM (SELECT unnest(rs.scopeSpans) AS ss FROM "
               f"(SELECT unnest(resourceSpans) AS rs FROM read_json('{path}')))) GROUP BY ALL")
    con.execute(sql).fetchall()
    return {"bare_s": time.perf_counter() - t, "bare_rss_mb": _rss_mb()}


def child_rollup(path: str, extra: str) -> dict[str, float]:
    from costwarden.tools.llm.rollup import UsageRollup
    from costwarden.tools.llm.usage import UsageLog

    rollup = UsageRollup()
    t = time.perf_counter()
    rollup.sync([path])
    full = time.perf_counter() - t
    full_rss = _rss_mb()
    n = rollup.records_read
    with open(path, "ab") as out, open(extra, "rb") as src:
        shutil.copyfileobj(src, out)
    t = time.perf_counter()
    rollup.sync([path])
    incr = time.perf_counter() - t
    t = time.perf_counter()
    rollup.sync([path])  # nothing new: the cost of a sweep with quiet files
    idle = time.perf_counter() - t
    assert rollup.records_read > n
    import costwarden.tools.llm.usage as usage

    usage._ROLLUPS[("paths", path)] = rollup  # noqa: SLF001 - time the detectors' queries on this rollup
    t = time.perf_counter()
    log = UsageLog([path])
    log.groups(), log.daily(), log.size_cells(), log.repeats(), log.tier_users()
    queries = time.perf_counter() - t
    return {"full_s": full, "incr_s": incr, "idle_s": idle, "queries_s": queries, "full_rss_mb": full_rss,
            "spans_full": n, "spans_incr": rollup.records_read - n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--formats", default="flat,otlp")
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temporary directory)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        print(json.dumps(child_bare(*rest) if kind == "bare" else child_rollup(*rest)))
        return
    work = Path(args.dir or tempfile.mkdtemp(prefix="llm-ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for fmt in args.formats.split(","):
        base, extra = work / f"{fmt}-{args.spans}.jsonl", work / f"{fmt}-{args.spans}-extra.jsonl"
        if not base.exists():
            t = time.perf_counter()
            write_spans(base, 0, args.spans, fmt, 1)
            write_spans(extra, args.spans, max(1, args.spans // 100), fmt, 2)
            print(f"{fmt}: wrote {args.spans:,} spans, {base.stat().st_size / 1e6:,.0f} MB in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
        copy = work / f"{fmt}-run.jsonl"
        shutil.copyfile(base, copy)
        res: dict[str, float] = {}
        for kind, argv in (("bare", [str(base), fmt]), ("rollup", [str(copy), str(extra)])):
            out = subprocess.run([sys.executable, __file__, "--child", kind, *argv], check=True,
                                 capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
            res.update(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{fmt} {kind}: {out.stdout.strip()}", flush=True)
        copy.unlink()
        rows.append((fmt, res))
    print(f"\n{'format':6} {'spans':>10} {'bare s':>7} {'full s':>7} {'x bare':>6} {'spans/s':>9} {'+1% s':>6} "
          f"{'% full':>6} {'idle s':>6} {'query s':>7} {'RSS MB':>7} {'bare RSS':>8}")
    for fmt, r in rows:
        print(f"{fmt:6} {int(r['spans_full']):>10,} {r['bare_s']:7.2f} {r['full_s']:7.2f} {r['full_s'] / r['bare_s']:6.2f} "
              f"{r['spans_full'] / r['full_s']:9,.0f} {r['incr_s']:6.2f} {100 * r['incr_s'] / r['full_s']:6.1f} "
              f"{r['idle_s']:6.3f} {r['queries_s']:7.2f} {r['full_rss_mb']:7.0f} {r['bare_rss_mb']:8.0f}")


if __name__ == "__main__":
    main()
