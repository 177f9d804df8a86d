"""Token-usage ingest benchmark: full read, incremental read after +1%, and DuckDB's bare scan.

    python bench/llm_ingest.py --spans 1000000 [--formats flat,otlp,litellm] [--dir DIR]

For each encoding (flat GenAI JSON lines as the OTLP spool writes them; OTLP JSON lines as the
Collector's file exporter writes them, 100 spans per line; LiteLLM_SpendLogs rows in a throwaway
database on the local PostgreSQL, bulk-loaded with COPY and dropped afterwards) it writes N spans,
then in separate child processes (so each peak RSS is its own) measures:

- bare: DuckDB's `read_json` (schema auto-detected) + GROUP BY feature/model over the file, the
  floor any reader of that file pays; for PostgreSQL, the same GROUP BY run by the server;
- all: the same scan reading every field the rollup keeps (hour, feature, tier, model, provider,
  outcome, tokens, tenant, span id) grouped on the rollup's keys with distinct tenants and span
  ids: what any reader doing the rollup's job pays before writing anything;
- full: a fresh rollup reading the whole file (tools/llm/rollup.py), or the spend-log source
  (tools/llm/litellm_db.py) aggregating in PostgreSQL into a fresh rollup;
- incremental: the same rollup after 1% more spans were appended: only they are read (for
  PostgreSQL: the hours after the first read's watermark, the settle delay moved on by a clock).

Peak RSS is the Python process's: PostgreSQL's own memory is not in the litellm row.

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


def _pick(seed: int, field: str, n: int, var: str = "i") -> str:
    return f"(hash({var}, {seed}, '{field}') % {n})::INTEGER + 1"


def write_spans_fast(path: Path, start: int, count: int, fmt: str, seed: int) -> None:
    """The same spans as `write_spans` (same keys, shapes, value ranges and times; choices drawn from a
    hash instead of Python's random) written by DuckDB: 10M OTLP spans in minutes, not the best part
    of an hour. Attribute values carry both `stringValue` and `intValue`, one of them null."""
    import duckdb

    con = duckdb.connect()
    providers = "['" + "', '".join(p for p, _ in MODELS) + "']"
    models = "['" + "', '".join(m for _, m in MODELS) + "']"
    features = "['" + "', '".join(FEATURES) + "']"

    def attrs(v: str) -> list[tuple[str, str, bool]]:
        m = _pick(seed, "m", len(MODELS), v)
        return [("gen_ai.provider.name", f"{providers}[{m}]", False), ("gen_ai.operation.name", "'chat'", False),
                ("gen_ai.request.model", f"{models}[{m}]", False),
                ("gen_ai.usage.input_tokens", f"49 + {_pick(seed, 'in', 8951, v)}", True),
                ("gen_ai.usage.output_tokens", f"9 + {_pick(seed, 'out', 1491, v)}", True),
                ("costwarden.feature", f"{features}[{_pick(seed, 'f', len(FEATURES), v)}]", False),
                ("costwarden.tier", f"['starter', 'pro'][{_pick(seed, 't', 2, v)}]", False),
                ("costwarden.tenant", f"'t' || ({_pick(seed, 'u', 500, v)} - 1)", False),
                ("costwarden.outcome", "'success'", False)]

    start_ns = f"({T0}::HUGEINT + {{v}}::HUGEINT * 2000000000)"
    if fmt == "flat":
        fields = ", ".join(f'"{k}" := {e}' for k, e, _ in attrs("i"))
        sql = (f"SELECT printf('%032x', i) AS traceId, printf('%016x', i) AS spanId, "
               f"CAST({start_ns.format(v='i')} AS VARCHAR) AS startTimeUnixNano, struct_pack({fields}) AS attributes "
               f"FROM range({start}, {start + count}) t(i)")
    else:
        kv = ", ".join(f"{{'key': '{k}', 'value': {{'stringValue': CAST({'NULL' if n else e} AS VARCHAR), "
                       f"'intValue': CAST({e if n else 'NULL'} AS VARCHAR)}}}}" for k, e, n in attrs("s"))
        span = (f"{{'traceId': printf('%032x', s), 'spanId': printf('%016x', s), 'name': 'chat', 'kind': 3, "
                f"'startTimeUnixNano': CAST({start_ns.format(v='s')} AS VARCHAR), "
                f"'endTimeUnixNano': CAST({start_ns.format(v='s')} + 900000000 AS VARCHAR), 'attributes': [{kv}]}}")
        sql = (f"SELECT [{{'resource': {{'attributes': [{{'key': 'service.name', 'value': {{'stringValue': 'app'}}}}]}}, "
               f"'scopeSpans': [{{'scope': {{'name': 'opentelemetry.instrumentation.openai_v2'}}, "
               f"'spans': list_transform(range(b, least(b + 100, {start + count})), lambda s: {span})}}]}}] AS resourceSpans "
               f"FROM range({start}, {start + count}, 100) t(b)")
    con.execute("SET preserve_insertion_order = true")  # range()'s order, streamed: an ORDER BY would hold it all
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT json)")


def _rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and exec,
    so a child started after the parent wrote 10M spans with DuckDB reported the parent's 2.3 GB."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _otlp_attr(key: str) -> str:
    return f"list_filter(s.attributes, lambda a: a.key = '{key}')[1].value"


def _bare_sql(path: str, fmt: str, every: bool) -> str:
    """DuckDB's own scan of the file: by feature and model only (`every` False: the issue's bare
    scan), or every field the rollup keeps, grouped as it groups (hour, feature, tier, model,
    provider, outcome) with token sums, distinct tenants and distinct span ids (its dedup)."""
    if fmt == "flat":
        a = {k: f'attributes."{v}"' for k, v in (("f", "costwarden.feature"), ("m", "gen_ai.request.model"),
             ("t", "costwarden.tier"), ("p", "gen_ai.provider.name"), ("o", "costwarden.outcome"),
             ("u", "costwarden.tenant"), ("i", "gen_ai.usage.input_tokens"), ("x", "gen_ai.usage.output_tokens"))}
        src, ts, sid = f"read_json('{path}')", "startTimeUnixNano", "traceId || spanId"
    else:
        a = {k: f"{_otlp_attr(v)}.{'intValue' if k in 'ix' else 'stringValue'}" for k, v in (
             ("f", "costwarden.feature"), ("m", "gen_ai.request.model"), ("t", "costwarden.tier"),
             ("p", "gen_ai.provider.name"), ("o", "costwarden.outcome"), ("u", "costwarden.tenant"),
             ("i", "gen_ai.usage.input_tokens"), ("x", "gen_ai.usage.output_tokens"))}
        src = (f"(SELECT unnest(ss.spans) AS s FROM (SELECT unnest(rs.scopeSpans) AS ss FROM "
               f"(SELECT unnest(resourceSpans) AS rs FROM read_json('{path}'))))")
        ts, sid = "s.startTimeUnixNano", "s.traceId || s.spanId"
    if not every:
        return f"SELECT {a['f']}, {a['m']}, COUNT(*), SUM(CAST({a['i']} AS BIGINT)) FROM {src} GROUP BY ALL"
    hour = f"date_trunc('hour', make_timestamp(CAST({ts} AS BIGINT) // 1000))"
    return (f"SELECT {hour}, {a['f']}, {a['t']}, {a['m']}, {a['p']}, {a['o']}, COUNT(*), SUM(CAST({a['i']} AS BIGINT)), "
            f"SUM(CAST({a['x']} AS BIGINT)), COUNT(DISTINCT {a['u']}), COUNT(DISTINCT {sid}) FROM {src} GROUP BY ALL")


def child_bare(path: str, fmt: str) -> dict[str, float]:
    import duckdb

    con = duckdb.connect()
    out = {}
    for key, every in (("bare", False), ("bare_all", True)):
        t, c = time.perf_counter(), time.process_time()
        con.execute(_bare_sql(path, fmt, every)).fetchall()
        out[f"{key}_s"], out[f"{key}_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        if not every:
            out["bare_rss_mb"] = _rss_mb()
    return out


def _store(path: str) -> str | None:
    """The rollup's store, as a sweep has it by default (<state_dir>/usage.duckdb), or None (--memory)."""
    if os.environ.get("BENCH_MEMORY"):
        return None
    store = str(Path(path).with_suffix(".duckdb"))
    for leftover in (store, store + ".wal"):
        Path(leftover).unlink(missing_ok=True)
    return store


def child_rollup(path: str, extra: str) -> dict[str, float]:
    from costwarden.tools.llm.rollup import UsageRollup
    from costwarden.tools.llm.usage import UsageLog

    rollup = UsageRollup(_store(path))
    t, c = time.perf_counter(), time.process_time()
    rollup.sync([path])
    full, full_cpu = time.perf_counter() - t, time.process_time() - c
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
    return {"full_s": full, "full_cpu_s": full_cpu, "incr_s": incr, "idle_s": idle, "queries_s": queries, "full_rss_mb": full_rss,
            "spans_full": n, "spans_incr": rollup.records_read - n}


PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
SETTLE_S = 15 * 60  # LiteLLMDatabase's default settle delay


def _hour_ceil(ns: int) -> int:
    return -(-ns // 3_600_000_000_000) * 3_600_000_000_000


def _pg_times(spans: int) -> tuple[int, int, int]:
    """(start of the +1% rows, the first read's clock, the second read's clock), in ns: the extra rows
    start at the hour the first read's watermark ends, so that read leaves them for the second."""
    extra_start = _hour_ceil(T0 + spans * 2_000_000_000)
    extra_end = _hour_ceil(extra_start + max(1, spans // 100) * 2_000_000_000)
    return extra_start, extra_start + SETTLE_S * 10**9, extra_end + SETTLE_S * 10**9


def _spend_rows(start: int, count: int, t_ns: int, seed: int):  # noqa: ANN202 - a generator of CSV lines
    import csv
    import io
    from datetime import datetime, timezone

    rng = random.Random(seed)
    buf = io.StringIO()
    w = csv.writer(buf)
    for i in range(start, start + count):
        a = _attrs(rng)
        ts = datetime.fromtimestamp((t_ns + (i - start) * 2_000_000_000) / 1e9, timezone.utc).replace(tzinfo=None)
        i_tok, o_tok = a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]
        w.writerow([f"req-{i}", "acompletion", "", 0.0001 * (i_tok + o_tok), i_tok + o_tok, i_tok, o_tok, ts, ts,
                    f"{a['gen_ai.provider.name']}/{a['gen_ai.request.model']}", a["gen_ai.request.model"],
                    a["gen_ai.provider.name"], "", a["costwarden.tenant"],
                    json.dumps([f"feature:{a['costwarden.feature']}", f"tier:{a['costwarden.tier']}"]), "success",
                    "{}", ts, ts])
        if buf.tell() > 1 << 20:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def pg_create() -> str:
    import secrets

    import psycopg

    name = f"bench_litellm_{secrets.token_hex(4)}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name


def pg_load(name: str, spans: int) -> str:
    """Fill the throwaway database with LiteLLM_SpendLogs (LiteLLM's schema, its startTime index):
    `spans` rows and 1% more after them; returns its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy import create_engine

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.litellm_schema import create_tables

    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = create_engine(url)
    create_tables(engine, ("LiteLLM_SpendLogs",))
    engine.dispose()
    cols = ('request_id, call_type, api_key, spend, total_tokens, prompt_tokens, completion_tokens, "startTime", '
            '"endTime", model, model_group, custom_llm_provider, "user", end_user, request_tags, status, metadata, '
            'created_at, updated_at')
    extra_start = _pg_times(spans)[0]
    with psycopg.connect(f"{PG_SERVER}/{name}", autocommit=True) as con:
        copy = f'COPY "LiteLLM_SpendLogs" ({cols}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (api_key, "user"))'
        with con.cursor() as cur, cur.copy(copy) as cp:
            for block in _spend_rows(0, spans, T0, 1):
                cp.write(block)
            for block in _spend_rows(spans, max(1, spans // 100), extra_start, 2):
                cp.write(block)
        con.execute('CREATE INDEX ON "LiteLLM_SpendLogs" ("startTime")')  # as LiteLLM's schema.prisma declares
        con.execute('VACUUM ANALYZE "LiteLLM_SpendLogs"')
    return url


def pg_drop(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def child_pg_bare(name: str, spans: str) -> dict[str, float]:
    import psycopg

    end = datetime_utc(_pg_times(int(spans))[0])
    with psycopg.connect(f"{PG_SERVER}/{name}") as con:
        t = time.perf_counter()
        con.execute('SELECT model, COUNT(*), SUM(prompt_tokens) FROM "LiteLLM_SpendLogs" WHERE "startTime" < %s '
                    'GROUP BY model', [end.replace(tzinfo=None)]).fetchall()
        return {"bare_s": time.perf_counter() - t, "bare_rss_mb": _rss_mb()}


def datetime_utc(ns: int):  # noqa: ANN201
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns / 1e9, timezone.utc)


def child_pg_rollup(url: str, spans: str) -> dict[str, float]:
    from costwarden.tools.llm.litellm_db import LiteLLMDatabase
    from costwarden.tools.llm.rollup import UsageRollup

    _, clock1, clock2 = _pg_times(int(spans))
    rollup, res = UsageRollup(_store(os.path.join(tempfile.gettempdir(), f"bench-litellm-{os.getpid()}.jsonl"))), {}
    since = None
    for label, clock in (("full", clock1), ("incr", clock2)):
        db = LiteLLMDatabase(url, source="spend_logs", clock=lambda c=clock: datetime_utc(c))
        t = time.perf_counter()
        rows, upto = db.read(since)
        rollup.add_aggregates("litellm", rows, upto.isoformat())
        res[f"{label}_s"] = time.perf_counter() - t
        db.close()
        since = upto
        if label == "full":
            res["full_rss_mb"] = _rss_mb()
    requests = rollup.query("SELECT SUM(requests) FROM cells")[0][0]
    assert requests == int(spans) + max(1, int(spans) // 100), requests
    rollup.close()
    if rollup.store:
        for leftover in (rollup.store, rollup.store + ".wal"):
            Path(leftover).unlink(missing_ok=True)
    return {**res, "idle_s": float("nan"), "queries_s": float("nan"), "spans_full": int(spans),
            "spans_incr": max(1, int(spans) // 100)}


def _child(kind: str, *argv: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, *argv], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    print(f"{kind}: {out.stdout.strip()}", flush=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_pg(spans: int) -> dict[str, float]:
    name = pg_create()
    try:
        t = time.perf_counter()
        url = pg_load(name, spans)
        print(f"litellm: loaded {spans:,} + 1% rows with COPY in {time.perf_counter() - t:.1f} s", flush=True)
        return {**_child("pgbare", name, str(spans)), **_child("pgrollup", url, str(spans))}
    finally:
        pg_drop(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--formats", default="flat,otlp,litellm")
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temporary directory)")
    ap.add_argument("--fast-write", action="store_true",
                    help="write the spans with DuckDB (minutes for 10M OTLP spans instead of most of an hour)")
    ap.add_argument("--memory", action="store_true",
                    help="keep the rollup in memory (default: a store file, as a sweep keeps it)")
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory:
        os.environ["BENCH_MEMORY"] = "1"
    if args.child:
        kind, *rest = args.child
        run = {"bare": child_bare, "rollup": child_rollup, "pgbare": child_pg_bare, "pgrollup": child_pg_rollup}
        print(json.dumps(run[kind](*rest)))
        return
    work = Path(args.dir or tempfile.mkdtemp(prefix="llm-ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for fmt in args.formats.split(","):
        if fmt == "litellm":
            rows.append((fmt, run_pg(args.spans)))
            continue
        base, extra = work / f"{fmt}-{args.spans}.jsonl", work / f"{fmt}-{args.spans}-extra.jsonl"
        if not base.exists():
            t = time.perf_counter()
            writer = write_spans_fast if args.fast_write else write_spans
            writer(base, 0, args.spans, fmt, 1)
            writer(extra, args.spans, max(1, args.spans // 100), fmt, 2)
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
        for leftover in (copy.with_suffix(".duckdb"), copy.with_suffix(".duckdb.wal")):
            leftover.unlink(missing_ok=True)
        rows.append((fmt, res))
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    nan = float("nan")
    print(f"\n{'format':7} {'spans':>10} {'bare s':>7} {'all s':>6} {'full s':>7} {'x bare':>6} {'x all':>6} "
          f"{'CPU x all':>9} {'spans/s':>9} {'+1% s':>6} {'% full':>6} {'idle s':>6} {'query s':>7} {'RSS MB':>7} "
          f"{'bare RSS':>8}")
    for fmt, r in rows:
        all_s, cpu = r.get("bare_all_s", nan), r.get("full_cpu_s", nan) / r.get("bare_all_cpu_s", nan)
        print(f"{fmt:7} {int(r['spans_full']):>10,} {r['bare_s']:7.2f} {all_s:6.2f} {r['full_s']:7.2f} "
              f"{r['full_s'] / r['bare_s']:6.2f} {r['full_s'] / all_s:6.2f} {cpu:9.2f} "
              f"{r['spans_full'] / r['full_s']:9,.0f} {r['incr_s']:6.2f} {100 * r['incr_s'] / r['full_s']:6.1f} "
              f"{r['idle_s']:6.3f} {r['queries_s']:7.2f} {r['full_rss_mb']:7.0f} {r['bare_rss_mb']:8.0f}")
    print("bare: DuckDB's read_json + GROUP BY feature, model; all: the same scan reading every field the rollup keeps, "
          "grouped by its keys with distinct tenants and span ids; CPU x all: process CPU seconds, full over all "
          "(steadier than wall time on a shared machine)")


if __name__ == "__main__":
    main()
