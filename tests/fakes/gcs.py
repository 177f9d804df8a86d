"""A tiny fake of the Cloud Storage JSON API on 127.0.0.1: list objects and media download.

Enough for tools/billing/remote.py: `GET /storage/v1/b/{bucket}/o?prefix=&pageToken=` (pages of
`page_size` items with nextPageToken) and `GET /storage/v1/b/{bucket}/o/{object}?alt=media`,
404 JSON errors for a missing bucket or object. Every request is recorded (method, path), so a
test can prove nothing but reads was sent.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeGcs:
    def __init__(self, page_size: int = 2) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.page_size = page_size
        self.requests: list[tuple[str, str]] = []
        self.media_downloads = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, code: int, message: str) -> None:
                self._send(code, json.dumps({"error": {"code": code, "message": message}}).encode())

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urllib.parse.urlsplit(self.path)
                fake.requests.append(("GET", parts.path))
                query = urllib.parse.parse_qs(parts.query)
                segs = parts.path.split("/")  # '', storage, v1, b, {bucket}, o[, {object}]
                if len(segs) < 6 or segs[1:4] != ["storage", "v1", "b"] or segs[5] != "o":
                    return self._error(404, "Not Found")
                bucket = urllib.parse.unquote(segs[4])
                if bucket not in fake.buckets:
                    return self._error(404, f"The specified bucket does not exist: {bucket}")
                objects = fake.buckets[bucket]
                if len(segs) == 6:
                    prefix = query.get("prefix", [""])[0]
                    names = sorted(n for n in objects if n.startswith(prefix))
                    start = int(query.get("pageToken", ["0"])[0])
                    page = names[start:start + fake.page_size]
                    doc: dict[str, Any] = {"kind": "storage#objects", "items": [
                        {"name": n, "bucket": bucket, "size": str(len(objects[n])),
                         "generation": str(fake.generations[(bucket, n)])} for n in page]}
                    if start + fake.page_size < len(names):
                        doc["nextPageToken"] = str(start + fake.page_size)
                    return self._send(200, json.dumps(doc).encode())
                name = urllib.parse.unquote("/".join(segs[6:]))
                if name not in objects or query.get("alt") != ["media"]:
                    return self._error(404, f"No such object: {bucket}/{name}")
                fake.media_downloads += 1
                return self._send(200, objects[name], "application/octet-stream")

            def _refuse(self) -> None:
                fake.requests.append((self.command, urllib.parse.urlsplit(self.path).path))
                self._error(405, "read-only fake")

            do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def put(self, bucket: str, name: str, data: bytes) -> None:
        self.buckets.setdefault(bucket, {})[name] = data
        self.generations[(bucket, name)] = self.generations.get((bucket, name), 0) + 1

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGcs:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
