"""Moto's Athena behind a thin WSGI shim that adds what moto leaves out: GetQueryResults pages
(moto returns every registered row at once, never a NextToken) and a DataScannedInBytes other than 0
in GetQueryExecution. It also routes the paths botocore now sends Athena (rest-json: POST
/query-executions, GET /query-executions/{id}/results?...) to moto's Athena, which parses them by
botocore's service model but whose URL map (moto 5.2) only lists `/`. Moto does not execute SQL: the rows a query returns are registered first
through moto's /moto-api/static/athena/query-results queue (register_results)."""

from __future__ import annotations

import io
import json
import logging
import re
import urllib.parse
import urllib.request
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server


def _route_rest_json() -> None:
    """Let moto's Flask app accept Athena's rest-json paths (moto 5.2 routes only `/`); moto's own
    request parser then reads them by botocore's service model."""
    from moto.athena import urls
    from moto.athena.responses import AthenaResponse

    for path in (r"{0}/query-executions$", r"{0}/query-executions/(?P<id>[^/]+)$",
                 r"{0}/query-executions/(?P<id>[^/]+)/results$", r"{0}/workgroups/(?P<wg>[^/]+)$"):
        urls.url_paths.setdefault(path, AthenaResponse.dispatch)


class AthenaShim:
    def __init__(self, app: Any, page_size: int) -> None:
        self.app = app
        self.page_size = page_size
        self.scanned_bytes = 0  # reported for every query
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        target = (environ.get("HTTP_X_AMZ_TARGET") or "").rsplit(".", 1)[-1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        if not target and environ.get("PATH_INFO", "").startswith("/query-executions"):
            target = {"POST": "StartQueryExecution"}.get(environ["REQUEST_METHOD"], "")
            path = environ["PATH_INFO"]
            if environ["REQUEST_METHOD"] == "GET":
                target = "GetQueryResults" if path.endswith("/results") else "GetQueryExecution"
        if target:
            self.calls.append((target, json.loads(body or b"{}")))
        if target not in ("GetQueryResults", "GetQueryExecution"):
            return self.app(environ, start_response)
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=headers)
            return lambda data: None

        raw = b"".join(self.app(environ, capture))
        if not captured["status"].startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [raw]
        doc = json.loads(raw)
        if target == "GetQueryExecution":
            doc["QueryExecution"]["Statistics"]["DataScannedInBytes"] = self.scanned_bytes
        else:
            req = json.loads(body or b"{}")
            qs = {k.lower(): v[0] for k, v in urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).items()}
            offset = int(req.get("NextToken") or qs.get("nexttoken") or 0)
            size = min(int(req.get("MaxResults") or qs.get("maxresults") or 1000), self.page_size)
            rows = doc["ResultSet"]["Rows"]
            doc["ResultSet"]["Rows"] = rows[offset:offset + size]
            if offset + size < len(rows):
                doc["NextToken"] = str(offset + size)
        out = json.dumps(doc).encode()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"], headers + [("Content-Length", str(len(out)))])
        return [out]


class AthenaMotoServer(ThreadedMotoServer):
    def __init__(self, page_size: int = 5) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        _route_rest_json()
        self.shim = AthenaShim(DomainDispatcherApplication(create_backend_app), page_size)

    def _server_entry(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server(self._ip_address, self._port, self.shim, True)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def register_results(self, results: list[tuple[list[str], list[str], list[tuple[Any, ...]]]],
                         region: str = "us-east-1") -> None:
        """Queue the results of the next queries: (column names, Athena types, rows), each with the
        header row Athena puts first in a SELECT's result."""
        payload = {"region": region, "results": []}
        for names, types, rows in results:
            header = {"Data": [{"VarCharValue": n} for n in names]}
            data = [{"Data": [{} if v is None else {"VarCharValue": str(v)} for v in r]} for r in rows]
            payload["results"].append({"rows": [header, *data], "column_info": [
                {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": n, "Label": n, "Type": t,
                 "Precision": 38 if t == "decimal" else 0, "Scale": 17 if t == "decimal" else 0,
                 "Nullable": "NULLABLE", "CaseSensitive": False} for n, t in zip(names, types)]})
        req = urllib.request.Request(self.endpoint + "/moto-api/static/athena/query-results", method="POST",
                                     data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
