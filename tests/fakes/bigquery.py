"""A local fake of BigQuery's query REST endpoints, run by google-cloud-bigquery's own client:

- POST /bigquery/v2/projects/{p}/queries            (jobs.query; dryRun and maximumBytesBilled)
- GET  /bigquery/v2/projects/{p}/queries/{jobId}    (jobs.getQueryResults; pageToken paging)
- GET  /bigquery/v2/projects/{p}/jobs/{jobId}       (jobs.get, which the client calls while paging)

Bodies follow Google's documented QueryResponse / GetQueryResultsResponse / Job resources. The SQL is
really executed, on DuckDB (transpiled back from GoogleSQL), so the numbers are the query's own;
each query "processes" a configured number of bytes, and pages hold `page_size` rows whatever the
client asks, so paging always happens.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from datetime import date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.warehouse_duckdb import to_duckdb


def _bq_type(duck: str) -> str:
    duck = duck.upper()
    if duck.startswith("DECIMAL"):
        return "BIGNUMERIC"
    if duck.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return {"DATE": "DATE", "BIGINT": "INTEGER", "INTEGER": "INTEGER", "DOUBLE": "FLOAT"}.get(duck, "STRING")


def _cell(v: Any, int64_ts: bool) -> Any:
    if v is None:
        return None
    if isinstance(v, datetime):
        us = int(v.timestamp() * 1_000_000)
        return str(us) if int64_ts else str(us / 1_000_000)
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


class FakeBigQuery:
    def __init__(self, con: Any, *, bytes_per_query: int = 50 * 1024**2, page_size: int = 7) -> None:
        self.con = con
        self.bytes_per_query = bytes_per_query
        self.dry_run_bytes: int | None = None  # the estimate, when it differs from what the run processes
        self.page_size = page_size
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body or query)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                path = urllib.parse.urlparse(self.path).path
                fake.requests.append(("POST", path, body))
                parts = path.strip("/").split("/")
                if parts[:3] == ["bigquery", "v2", "projects"] and parts[4:] == ["queries"]:
                    self._send(*fake.query(parts[3], body))
                else:
                    self._send(404, {"error": {"code": 404, "message": f"no route {path}"}})

            def do_GET(self) -> None:  # noqa: N802
                url = urllib.parse.urlparse(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                fake.requests.append(("GET", url.path, q))
                parts = url.path.strip("/").split("/")
                if parts[:3] == ["bigquery", "v2", "projects"] and len(parts) == 6 and parts[4] == "queries":
                    self._send(*fake.results(parts[5], q))
                elif parts[:3] == ["bigquery", "v2", "projects"] and len(parts) == 6 and parts[4] == "jobs":
                    self._send(*fake.job(parts[5]))
                else:
                    self._send(404, {"error": {"code": 404, "message": f"no route {url.path}"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeBigQuery:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the API -----------------------------------------------------------------------------
    def query(self, project: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        processed = self.bytes_per_query
        if body.get("dryRun"):
            processed = processed if self.dry_run_bytes is None else self.dry_run_bytes
            return 200, {"kind": "bigquery#queryResponse", "jobComplete": True, "totalBytesProcessed": str(processed),
                         "jobReference": {"projectId": project, "location": body.get("location", "US")},
                         "schema": {"fields": []}}
        limit = body.get("maximumBytesBilled")
        if limit is not None and processed > int(limit):
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                   "message": f"Query exceeded limit for bytes billed: {limit}. "
                                              f"{processed} or higher required.",
                                   "errors": [{"reason": "bytesBilledLimitExceeded", "domain": "global",
                                               "message": "Query exceeded limit for bytes billed"}]}}
        try:
            with self.lock:
                cur = self.con.execute(to_duckdb(body["query"], "bigquery"))
                rows = cur.fetchall()
                desc = cur.description
        except Exception as exc:  # noqa: BLE001 - a bad query is a 400 with BigQuery's error shape
            return 400, {"error": {"code": 400, "message": str(exc).splitlines()[0],
                                   "errors": [{"reason": "invalidQuery", "message": str(exc).splitlines()[0]}]}}
        int64_ts = bool(body.get("formatOptions", {}).get("useInt64Timestamp"))
        job_id = f"job_{len(self.jobs) + 1}"
        self.jobs[job_id] = {
            "project": project, "location": body.get("location", "US"), "query": body["query"],
            "schema": {"fields": [{"name": d[0], "type": _bq_type(str(d[1])), "mode": "NULLABLE"} for d in desc]},
            "rows": [{"f": [{"v": _cell(v, int64_ts)} for v in r]} for r in rows], "bytes": processed}
        return 200, {"kind": "bigquery#queryResponse", **self._page(job_id, 0)}

    def _page(self, job_id: str, offset: int) -> dict[str, Any]:
        job = self.jobs[job_id]
        rows = job["rows"][offset:offset + self.page_size]
        out = {"jobReference": {"projectId": job["project"], "jobId": job_id, "location": job["location"]},
               "schema": job["schema"], "totalRows": str(len(job["rows"])), "rows": rows, "jobComplete": True,
               "totalBytesProcessed": str(job["bytes"]), "cacheHit": False}
        if offset + self.page_size < len(job["rows"]):
            out["pageToken"] = str(offset + self.page_size)
        return out

    def results(self, job_id: str, q: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if job_id not in self.jobs:
            return 404, {"error": {"code": 404, "message": f"Not found: Job {job_id}"}}
        return 200, {"kind": "bigquery#getQueryResultsResponse", **self._page(job_id, int(q.get("pageToken", 0)))}

    def job(self, job_id: str) -> tuple[int, dict[str, Any]]:
        if job_id not in self.jobs:
            return 404, {"error": {"code": 404, "message": f"Not found: Job {job_id}"}}
        job = self.jobs[job_id]
        return 200, {"kind": "bigquery#job", "id": f"{job['project']}:{job['location']}.{job_id}",
                     "jobReference": {"projectId": job["project"], "jobId": job_id, "location": job["location"]},
                     "configuration": {"query": {"query": job["query"], "useLegacySql": False}},
                     "status": {"state": "DONE"},
                     "statistics": {"query": {"totalBytesProcessed": str(job["bytes"]), "schema": job["schema"]}}}
