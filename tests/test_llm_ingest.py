"""Token-usage ingest: OTLP JSON lines as the Collector writes them, incremental reads from watermarks,
span-id dedupe, and the rollup's totals against an independent sum of the records."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costwarden.tools.errors import BillingInputError
from costwarden.tools.llm.fields import UsageAggregate
from costwarden.tools.llm.rollup import UsageRollup
from costwarden.tools.llm.usage import UsageLog

T0 = 1_764_600_000  # 2025-12-01T14:40:00Z


def kv(key: str, value: object) -> dict:
    typed = {"intValue": str(value)} if isinstance(value, int) else {"stringValue": str(value)}
    return {"key": key, "value": typed}


def span(i: int, feature: str = "chat", inp: int = 100, out: int = 10, tenant: str = "t1", t: int = T0,
         **attrs: object) -> dict:
    """One GenAI span as a plain dict of attributes (encoded by `collector_line` or `flat_line`)."""
    return {"id": f"{i:016x}", "t": t, "feature": feature, "attrs": {
        "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out, "costwarden.tenant": tenant, **attrs}}


def collector_line(spans: list[dict]) -> str:
    """One export batch as the Collector's file exporter writes it: the feature and tier are resource
    attributes, everything else span attributes, ints as strings."""
    by_feature: dict[str, list[dict]] = {}
    for s in spans:
        by_feature.setdefault(s["feature"], []).append(s)
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [kv("service.name", "app"), kv("costwarden.feature", f),
                                    kv("costwarden.tier", "pro")]},
        "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2"}, "spans": [{
            "traceId": "ab" * 16, "spanId": s["id"], "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(s["t"] * 10**9), "endTimeUnixNano": str(s["t"] * 10**9 + 5),
            "attributes": [kv(k, v) for k, v in s["attrs"].items()], "status": {}} for s in group]}]}
        for f, group in by_feature.items()]})


def flat_line(s: dict) -> str:
    """The same span as Costwarden's OTLP spool writes it."""
    return json.dumps({"traceId": "ab" * 16, "spanId": s["id"], "startTimeUnixNano": str(s["t"] * 10**9),
                       "attributes": {**s["attrs"], "costwarden.feature": s["feature"], "costwarden.tier": "pro"}})


def append(path: Path, lines: list[str]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "at", encoding="utf-8") as fh:  # a .gz grows by one gzip member per append
        fh.write("".join(line + "\n" for line in lines))


def totals(log: UsageLog) -> dict[str, tuple[int, int, int, int]]:
    """(requests, input, output, users) per feature, from the rollup."""
    out: dict[str, list[int]] = {}
    for g in log.groups():
        row = out.setdefault(g.feature, [0, 0, 0, 0])
        for k, v in enumerate((g.requests, g.input_tokens, g.output_tokens, g.users)):
            row[k] += v
    return {f: tuple(v) for f, v in out.items()}


def expected(spans: list[dict]) -> dict[str, tuple[int, int, int, int]]:
    """The same totals summed in Python, each span id once."""
    unique = {s["id"]: s for s in spans}.values()
    out: dict[str, list] = {}
    for s in unique:
        row = out.setdefault(s["feature"], [0, 0, 0, set()])
        row[0] += 1
        row[1] += s["attrs"]["gen_ai.usage.input_tokens"]
        row[2] += s["attrs"]["gen_ai.usage.output_tokens"]
        row[3].add(s["attrs"]["costwarden.tenant"])
    return {f: (n, i, o, len(u)) for f, (n, i, o, u) in out.items()}


@pytest.mark.parametrize("name", ["traces.jsonl", "traces.jsonl.gz"])
def test_collector_file_exporter_output_is_read(tmp_path, name):
    spans = [span(i, feature=("chat", "search")[i % 2], inp=100 + i, out=i, tenant=f"t{i % 3}", t=T0 + 3600 * (i % 2),
                  **{"gen_ai.usage.cache_read.input_tokens": 7}) for i in range(9)]
    path = tmp_path / name
    append(path, [collector_line(spans[:4]), collector_line(spans[4:])])
    log = UsageLog([path])
    assert totals(log) == expected(spans)
    (g, *_) = log.groups()
    assert (g.provider, g.tier, g.model, g.cache_read_tokens) == ("openai", "pro", "gpt-4o", 7 * len(
        [s for s in spans if s["feature"] == g.feature]))
    assert log.span() == (datetime(2025, 12, 1, 14, 40), datetime(2025, 12, 1, 15, 40))
    assert {(d.day.isoformat(), d.requests) for d in log.daily()} == {("2025-12-01", 5), ("2025-12-01", 4)}


def test_span_attributes_win_over_resource_and_new_spellings_over_old(tmp_path):
    s = span(1, **{"costwarden.tier": "enterprise", "gen_ai.provider.name": "azure.ai.openai"})
    append(tmp_path / "t.jsonl", [collector_line([s])])
    (g,) = UsageLog([tmp_path / "t.jsonl"]).groups()
    assert (g.tier, g.provider) == ("enterprise", "azure.ai.openai")


def test_appending_reads_only_the_new_lines(tmp_path):
    path = tmp_path / "spool-1.jsonl"
    paths = [path, str(tmp_path / "spool-*.jsonl")]  # one file named twice: read once
    first = [span(i) for i in range(50)]
    append(path, [flat_line(s) for s in first])
    log = UsageLog(paths)
    read = log.rollup.records_read
    assert read == 50
    assert UsageLog(paths).rollup is log.rollup  # one rollup per process for these paths
    assert log.rollup.records_read == read  # nothing appended: nothing parsed
    more = [span(i, feature="search") for i in range(50, 57)]
    append(path, [flat_line(s) for s in more])
    log = UsageLog(paths)
    assert log.rollup.records_read - read == 7
    assert totals(log) == expected(first + more)


def test_a_line_still_being_written_waits_for_its_newline(tmp_path):
    path = tmp_path / "u.jsonl"
    whole, partial = flat_line(span(1)), flat_line(span(2))
    path.write_text(whole + "\n" + partial[:30])
    assert UsageLog([path]).count() == 1
    with path.open("a") as fh:
        fh.write(partial[30:] + "\n")
    assert UsageLog([path]).count() == 2


def test_duplicate_spans_count_once_across_lines_files_and_formats(tmp_path):
    spans = [span(i, tenant=f"t{i}") for i in range(10)]
    append(tmp_path / "a.jsonl", [collector_line(spans)])
    append(tmp_path / "b.jsonl", [flat_line(s) for s in spans[5:]] + [collector_line(spans[:2])])
    log = UsageLog([tmp_path / "a.jsonl", tmp_path / "b.jsonl"])
    assert log.count() == 10
    assert totals(log) == expected(spans)


def test_rotation_truncation_and_rename_keep_counts_right(tmp_path):
    path = tmp_path / "usage.jsonl"
    append(path, [flat_line(span(i)) for i in range(5)])
    glob = str(tmp_path / "usage.jsonl*")
    assert UsageLog([glob]).count() == 5
    append(path, [flat_line(span(i)) for i in range(5, 8)])
    path.rename(tmp_path / "usage.jsonl.1")  # rotated by rename: same inode, only its tail is new
    append(path, [flat_line(span(i)) for i in range(8, 10)])
    log = UsageLog([glob])
    assert log.count() == 10 and log.rollup.records_read == 5 + 3 + 2
    # copytruncate: the same inode starts over with other content
    trunc = tmp_path / "other.jsonl"
    append(trunc, [json.dumps({"timestamp": T0, "model": "gpt-4o", "prompt_tokens": 5})] * 3)
    assert UsageLog([trunc]).count() == 3
    trunc.write_text(json.dumps({"timestamp": T0, "model": "gpt-4o", "prompt_tokens": 5}) + "\n")
    assert UsageLog([trunc]).count() == 4


def test_a_bad_span_names_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    bad = span(3)
    del bad["attrs"]["gen_ai.request.model"]
    append(path, [collector_line([span(1)]), "", collector_line([span(2), bad])])
    with pytest.raises(BillingInputError) as e:
        UsageLog([path])
    assert str(e.value).startswith(f"{path}:3: span {bad['id']}: no model")


def test_aggregates_replace_their_hours_and_keep_a_watermark(tmp_path):
    rollup = UsageRollup(str(tmp_path / "rollup.duckdb"))
    day = datetime(2025, 12, 1, tzinfo=timezone.utc)

    def agg(requests: int) -> UsageAggregate:
        return UsageAggregate(day, "chat", "pro", "gpt-4o", "openai", "success", requests, 10 * requests, requests,
                              0, 0, 0.5, 3)

    assert rollup.watermark("litellm:daily") is None
    rollup.add_aggregates("litellm:daily", [agg(4)], "2025-12-01")
    rollup.add_aggregates("litellm:daily", [agg(6)], "2025-12-01")  # the unfinished day, read again
    rollup.close()
    rollup = UsageRollup(str(tmp_path / "rollup.duckdb"))  # a restart keeps both
    assert rollup.watermark("litellm:daily") == "2025-12-01"
    assert rollup.query("SELECT SUM(requests), SUM(input_tokens), SUM(tenants) FROM cells")[0] == (6, 60, 3)
    rollup.close()


def test_a_persisted_store_resumes_after_a_restart(tmp_path):
    path = tmp_path / "u.jsonl.gz"
    append(path, [flat_line(span(i)) for i in range(4)])
    store = str(tmp_path / "s.duckdb")
    first = UsageRollup(store)
    first.sync([str(path)])
    first.close()
    append(path, [flat_line(span(i)) for i in range(4, 6)])
    second = UsageRollup(store)
    second.sync([str(path)])
    assert second.records_read == 2
    assert second.query("SELECT SUM(requests) FROM cells")[0][0] == 6
    second.close()


ids = st.integers(0, 30)
records = st.lists(st.builds(lambda i, f, a, b, t, h: span(i, feature=f, inp=a, out=b, tenant=f"t{t}",
                                                           t=T0 + 3600 * h),
                             ids, st.sampled_from(["chat", "search"]), st.integers(0, 5000), st.integers(0, 900),
                             st.integers(0, 4), st.integers(0, 30)), min_size=1, max_size=40)


def dedupe_exact(spans: list[dict]) -> list[dict]:
    """A retry resends the same span: a repeated id carries the first record's content."""
    first: dict[str, dict] = {}
    return [first.setdefault(s["id"], s) for s in spans]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=records.map(dedupe_exact), cuts=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 2),
                                                                st.booleans()), max_size=6))
def test_splitting_records_across_appends_and_files_gives_the_same_totals(spans, cuts):
    with tempfile.TemporaryDirectory() as d:
        once = Path(d, "once.jsonl")
        append(once, [collector_line(spans)])
        whole = totals(UsageLog([once]))
        files = [Path(d, "s0.jsonl"), Path(d, "s1.jsonl.gz"), Path(d, "s2.jsonl")]
        for f in files:
            f.touch() if f.suffix != ".gz" else append(f, [])
        pos, log = 0, None
        for end, k, otlp in sorted(cuts) + [(len(spans), 0, False)]:
            part = spans[pos:max(pos, end)]
            if part:
                append(files[k], [collector_line(part)] if otlp else [flat_line(s) for s in part])
            pos = max(pos, end)
            log = UsageLog([str(f) for f in files])  # a sweep after every append
        assert log is not None and totals(log) == whole == expected(spans)
        assert log.rollup.records_read == len(spans)  # every record parsed exactly once


def test_size_histogram_and_repeats_survive_incremental_reads(tmp_path):
    path = tmp_path / "u.jsonl"
    rep = {"costwarden.prompt_hash": "same", "costwarden.prompt_prefix_hash": "sys",
           "costwarden.prompt_prefix_tokens": 80}
    append(path, [flat_line(span(i, inp=100, out=10, **rep)) for i in range(2)])
    UsageLog([path])
    append(path, [flat_line(span(i, inp=100, out=10, **rep)) for i in range(2, 5)]
           + [flat_line(span(9, inp=5000, out=900))])
    log = UsageLog([path])
    (r,) = log.repeats()
    assert (r.hashed_requests, r.repeat_requests, r.repeat_input_tokens, r.repeat_prefix_tokens) == (5, 4, 400, 320)
    assert Counter({(c.input_le, c.output_le): c.requests for c in log.size_cells()}) == {(128, 64): 5, (8192, 1024): 1}
    assert os.path.getsize(path) == log.rollup.file_marks()[str(path)].offset


def test_small_chunks_and_compaction_give_the_same_answers(tmp_path):
    """A file read in many chunks (each a transaction of its own) answers as one read, with as many rows."""
    from costwarden.tools.llm import tail

    spans = [span(i, feature=("a", "b")[i % 2], inp=i * 37 % 5000, tenant=f"t{i % 7}", t=T0 + 600 * i,
                  **{"costwarden.prompt_hash": f"h{i % 3}"}) for i in range(120)]
    path = tmp_path / "u.jsonl.gz"
    append(path, [flat_line(s) for s in spans])
    rollup = UsageRollup()
    marks = []
    for chunk in tail.chunks(str(path), 0, str(tmp_path), chunk=3000):
        rollup._ingest(chunk, os.stat(path))  # noqa: SLF001 - drive the chunk loop with tiny chunks
        marks.append(chunk.end)
    assert len(marks) > 10 and rollup.records_read == 120
    assert marks[-1] == len(gzip.decompress(path.read_bytes()))
    whole = UsageLog([path])
    before = (whole.groups(), whole.repeats(), whole.size_cells())
    view = UsageLog.__new__(UsageLog)  # the same queries over the chunk-by-chunk rollup
    view.rollup, view.files = rollup, [str(path)]
    assert (view.groups(), view.repeats(), view.size_cells()) == before
    # each chunk folded the hours it shared with the ones before: one row per key, as one read has
    counts = "SELECT (SELECT COUNT(*) FROM cells), (SELECT COUNT(*) FROM tenants), (SELECT COUNT(*) FROM prompts)"
    assert rollup.query(counts) == whole.rollup.query(counts)
    rollup.compact()
    assert rollup.query(counts) == whole.rollup.query(counts)
    assert (view.groups(), view.repeats(), view.size_cells()) == before


def test_usage_store_setting_survives_a_new_process_and_litellm_ids_dedupe(tmp_path):
    import costwarden.tools.llm.usage as usage
    from costwarden.tools.billing.settings import BillingSettings

    path = tmp_path / "spend.jsonl"
    log_line = {"request_id": "r1", "model": "openai/gpt-4o-mini", "prompt_tokens": 40, "completion_tokens": 2,
                "startTime": "2025-12-01T10:00:00", "status": "success", "end_user": "u1"}
    append(path, [json.dumps(log_line), json.dumps(log_line), json.dumps({**log_line, "request_id": "r2"})])
    billing = BillingSettings(usage_paths=[str(path)], usage_store=str(tmp_path / "usage.duckdb"))
    log = UsageLog(billing.usage_paths, store=billing.usage_store)
    assert (log.count(), log.rollup.records_read) == (2, 3)
    log.rollup.close()
    usage._ROLLUPS.clear()  # noqa: SLF001 - what a restart does to the process's rollups
    again = UsageLog(billing.usage_paths, store=billing.usage_store)
    assert (again.count(), again.rollup.records_read) == (2, 0)
    (g,) = again.groups()
    assert (g.model, g.provider, g.input_tokens, g.users) == ("gpt-4o-mini", "openai", 80, 1)
    again.rollup.close()
    usage._ROLLUPS.clear()  # noqa: SLF001


def test_a_rare_spelling_first_seen_late_in_a_chunk_is_still_counted(tmp_path):
    """A chunk is read with the spellings its first megabyte uses unless a scan finds others: a span using
    older spellings (prompt/completion tokens, enduser.id, error.type, top-level keys) after a megabyte of
    ordinary spans is counted like any other."""
    import duckdb

    from costwarden.tools.llm.formats import SAMPLE, present_keys

    common = [span(i, feature=("a", "b")[i % 2], inp=10 + i % 50, tenant=f"t{i % 4}") for i in range(4000)]
    path = tmp_path / "spool.jsonl"
    append(path, [flat_line(s) for s in common])
    assert path.stat().st_size > SAMPLE
    con = duckdb.connect()
    sniffed = present_keys(con, str(path))
    assert sniffed is not None and "gen_ai.usage.prompt_tokens" not in sniffed  # the fast path is taken
    late = span(99_999, feature="late", inp=777, out=55, tenant="rare-user")
    old = {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.prompt_tokens": 777,
           "gen_ai.usage.completion_tokens": 55, "enduser.id": "rare-user", "error.type": "timeout"}
    append(path, [json.dumps({"spanId": late["id"], "traceId": "cd" * 16, "startTimeUnixNano": str(T0 * 10**9),
                              "costwarden.feature": "late", "attributes": old})])
    assert present_keys(con, str(path)) is None  # the late key sends the chunk down the full schema
    log = UsageLog([path])
    assert totals(log) == {**expected(common), "late": (1, 777, 55, 1)}
    escaped = tmp_path / "escaped.jsonl"  # a rare spelling written with a JSON escape is the same key
    append(escaped, [flat_line(s) for s in common])
    append(escaped, [flat_line(late).replace('"gen_ai.usage.input_tokens"', '"gen_ai.usage\\u002eprompt_tokens"')])
    assert "gen_ai.usage.prompt_tokens" not in escaped.read_text() and present_keys(con, str(escaped)) is None
    assert totals(UsageLog([escaped])) == {**expected(common), "late": (1, 777, 55, 1)}
    assert {g.outcome for g in log.groups() if g.feature == "late"} == {"failure"}


@pytest.mark.parametrize("kinds", [("flat",), ("flat", "litellm"), ("litellm",), ("otlp",), ("flat", "otlp", "litellm")])
def test_sniffed_and_full_schemas_give_the_same_rows(tmp_path, kinds):
    """Reading with only the spellings present changes nothing: same canonical rows, problems included."""
    import duckdb

    from costwarden.tools.llm.formats import SPELLINGS, batch_sql, present_keys

    lines = []
    for i in range(30):
        s = span(i, feature=("a", "b")[i % 2], tenant=f"t{i % 3}", **({"costwarden.prompt_hash": "h"} if i % 4 else {}))
        kind = kinds[i % len(kinds)]
        if kind == "flat":
            lines.append(flat_line(s) if i % 3 else json.dumps({**s["attrs"], "spanId": s["id"], "timestamp": T0 + i}))
        elif kind == "otlp":
            lines.append(collector_line([s]))
        else:
            lines.append(json.dumps({"request_id": f"r{i}", "model": "openai/gpt-4o", "prompt_tokens": i,
                                     "completion_tokens": "x" if i == 7 else 2, "startTime": "2025-12-01T10:00:00",
                                     "request_tags": ["feature:f", "tier:pro"], "user": "u"}))
    path = tmp_path / "mixed.jsonl"
    append(path, lines)
    con = duckdb.connect()
    sniffed = present_keys(con, str(path))
    assert (sniffed is None) == ("otlp" in kinds)  # OTLP batches are read with the full schema
    keys = frozenset(k for k in SPELLINGS if f'"{k}"' in path.read_text())  # what a sniff of all of it finds
    assert sniffed is None or sniffed == keys
    full = sorted(map(repr, con.execute(batch_sql(str(path))).fetchall()))
    assert len(full) == 30 and sorted(map(repr, con.execute(batch_sql(str(path), keys)).fetchall())) == full


def test_an_otlp_line_longer_than_the_reader_buffer_is_read_whole(tmp_path) -> None:
    """The JSON reader's buffer is 16 MB (memory: tools/llm/formats.py OBJECT_SIZES); a Collector
    batch written as one line can be longer (here 24,000 spans, about 21 MB) and must count in full."""
    import json

    from costwarden.tools.llm.formats import OBJECT_SIZES
    from costwarden.tools.llm.rollup import UsageRollup

    n = 24_000
    spans = [{"traceId": f"{i:032x}", "spanId": f"{i:016x}", "startTimeUnixNano": str(1_764_600_000_000_000_000 + i),
              "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
                             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}},
                             {"key": "costwarden.feature", "value": {"stringValue": "x" * 600}}]} for i in range(n)]
    line = json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]})
    assert len(line) > OBJECT_SIZES[0]
    path = tmp_path / "collector.jsonl"
    path.write_text(line + "\n")
    rollup = UsageRollup(None)
    rollup.sync([str(path)])
    assert rollup.query("SELECT SUM(requests), SUM(input_tokens) FROM cells")[0] == (n, 7 * n)
