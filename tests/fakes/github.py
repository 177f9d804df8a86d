"""A tiny fake of GitHub's pull-request REST API on 127.0.0.1, in front of a real (bare) git repository.

As documented (docs.github.com/rest/pulls/pulls): `POST /repos/{owner}/{repo}/pulls` with JSON
`{title, head, base, body}` answers 201 with the pull request (`number`, `html_url`, `state`,
`head.ref`, `base.ref`, `title`, `body`); 422 "Validation Failed" when a pull request for that
head already exists or the head branch does not exist in the repository; 401 "Bad credentials"
without `Authorization: Bearer <token>`. `GET /repos/{owner}/{repo}/pulls?head=owner:branch&state=all`
lists the pull requests of that head. Every request is recorded (method, path, headers, body),
so a test can prove that nothing was sent, or exactly what was.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class FakeGitHub:
    def __init__(self, repo: str, git_dir: Path, token: str) -> None:
        self.repo, self.git_dir, self.token = repo, git_dir, token
        self.requests: list[dict[str, Any]] = []
        self.pulls: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _send(self, code: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> tuple[str, dict[str, list[str]], Any]:
                parts = urllib.parse.urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                fake.requests.append({"method": self.command, "path": parts.path, "query": parts.query,
                                      "headers": dict(self.headers), "body": body})
                return parts.path, urllib.parse.parse_qs(parts.query), body

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path, query, _ = self._record()
                if not self._authorized():
                    return
                if path != f"/repos/{fake.repo}/pulls":
                    return self._send(404, {"message": "Not Found"})
                head = query.get("head", [""])[0]
                owner = fake.repo.split("/")[0]
                self._send(200, [p for p in fake.pulls if not head or f"{owner}:{p['head']['ref']}" == head])

            def do_POST(self) -> None:  # noqa: N802
                path, _, body = self._record()
                if not self._authorized():
                    return
                if path != f"/repos/{fake.repo}/pulls":
                    return self._send(404, {"message": "Not Found"})
                head, base = body.get("head", ""), body.get("base", "")
                if any(p["head"]["ref"] == head and p["state"] == "open" for p in fake.pulls):
                    return self._send(422, {"message": "Validation Failed", "errors": [
                        {"resource": "PullRequest", "code": "custom",
                         "message": f"A pull request already exists for {fake.repo.split('/')[0]}:{head}."}]})
                for ref, field in ((head, "head"), (base, "base")):
                    if not fake.has_branch(ref):
                        return self._send(422, {"message": "Validation Failed", "errors": [
                            {"resource": "PullRequest", "field": field, "code": "invalid"}]})
                number = len(fake.pulls) + 1
                pull = {"number": number, "state": "open", "title": body.get("title", ""), "body": body.get("body"),
                        "html_url": f"https://github.example/{fake.repo}/pull/{number}",
                        "head": {"ref": head}, "base": {"ref": base}}
                fake.pulls.append(pull)
                self._send(201, pull)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def has_branch(self, ref: str) -> bool:
        proc = subprocess.run(["git", "--git-dir", str(self.git_dir), "rev-parse", "--verify", "--quiet",
                               f"refs/heads/{ref}"], capture_output=True, check=False)
        return proc.returncode == 0

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGitHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
