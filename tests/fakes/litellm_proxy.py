"""A local fake of the LiteLLM proxy's team and key management endpoints, served by uvicorn on 127.0.0.1.

Why a fake: the real proxy needs a PostgreSQL database set up by Prisma, whose engines are downloaded at
run time, which no test here can do. The fake is built to LiteLLM's documented bodies and checks every
update body with LiteLLM's own request models (`litellm.proxy._types.UpdateTeamRequest`,
`UpdateKeyRequest`, from the installed package), so a field LiteLLM renames fails here:

- `GET /team/info?team_id=T` -> `{"team_id", "team_info": {...row}, "keys": []}`; 404 `{"detail": {"message"}}`
- `GET /key/info?key=K` -> `{"key", "info": {...row}}`
- `POST /team/update` `{"team_id", ...}` and `POST /key/update` `{"key", ...}`: merge patches (a field left
  out keeps its value, an explicit null clears it); 422 `{"detail": [...]}` on a body the model refuses
- every request needs `Authorization: Bearer <master key>` (401 with LiteLLM's `{"error": {...}}` otherwise)
"""

from __future__ import annotations

import socket
import threading
import time
from copy import deepcopy
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

MASTER_KEY = "sk-fake-master-0000"


def _models() -> tuple[Any, Any]:
    from litellm.proxy._types import UpdateKeyRequest, UpdateTeamRequest  # heavy: only when a fake starts

    return UpdateTeamRequest, UpdateKeyRequest


class FakeLiteLLMProxy:
    def __init__(self, teams: dict[str, dict[str, Any]] | None = None,
                 keys: dict[str, dict[str, Any]] | None = None, master_key: str = MASTER_KEY) -> None:
        self.team_model, self.key_model = _models()
        self.master_key = master_key
        self.teams = {t: {"team_id": t, "max_budget": None, "budget_duration": None, "tpm_limit": None,
                          "rpm_limit": None, "spend": 0.0, **row} for t, row in (teams or {}).items()}
        self.keys = {k: {"key_alias": None, "max_budget": None, "budget_duration": None, "tpm_limit": None,
                         "rpm_limit": None, "spend": 0.0, **row} for k, row in (keys or {}).items()}
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, json body or query)
        self.fail_next: list[int] = []  # statuses to answer the next requests with, then behave
        self.lock = threading.Lock()
        app = Starlette(routes=[Route("/team/info", self._team_info, methods=["GET"]),
                                Route("/key/info", self._key_info, methods=["GET"]),
                                Route("/team/update", self._team_update, methods=["POST"]),
                                Route("/key/update", self._key_update, methods=["POST"])])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posts(self) -> list[tuple[str, dict[str, Any]]]:
        return [(p, b) for m, p, b in self.requests if m == "POST"]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    # -- routes ----------------------------------------------------------------------------------
    async def _gate(self, request: Request) -> tuple[dict[str, Any], JSONResponse | None]:
        body: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                body = {"<unparsed>": True}
        with self.lock:
            self.requests.append((request.method, request.url.path, body))
            status = self.fail_next.pop(0) if self.fail_next else None
        if request.headers.get("authorization") != f"Bearer {self.master_key}":
            return body, JSONResponse({"error": {"message": "Authentication Error, Invalid proxy server token "
                                                            "passed.", "type": "auth_error", "param": "None",
                                                 "code": "401"}}, 401)
        if status is not None:
            return body, JSONResponse({"error": {"message": "fake: injected failure", "type": "None",
                                                 "param": "None", "code": str(status)}}, status)
        return body, None

    async def _team_info(self, request: Request) -> JSONResponse:
        query, refused = await self._gate(request)
        if refused:
            return refused
        row = self.teams.get(query.get("team_id", ""))
        if row is None:
            return JSONResponse({"detail": {"message": f"Team not found, passed team id: {query.get('team_id')}."}},
                                404)
        return JSONResponse({"team_id": row["team_id"], "team_info": deepcopy(row), "keys": []})

    async def _key_info(self, request: Request) -> JSONResponse:
        query, refused = await self._gate(request)
        if refused:
            return refused
        row = self.keys.get(query.get("key", ""))
        if row is None:
            return JSONResponse({"detail": {"message": "Key not found"}}, 404)
        return JSONResponse({"key": query["key"], "info": deepcopy(row)})

    def _patch(self, model: Any, table: dict[str, dict[str, Any]], id_field: str,
               body: dict[str, Any]) -> tuple[dict[str, Any] | None, JSONResponse | None]:
        from pydantic import ValidationError

        try:
            fields = model.model_validate(body).model_dump(exclude_unset=True)
        except ValidationError as exc:
            return None, JSONResponse({"detail": exc.errors(include_url=False, include_context=False,
                                                            include_input=False)}, 422)
        target = fields.pop(id_field, None)
        row = table.get(target or "")
        if row is None:
            return None, JSONResponse({"detail": {"error": f"{id_field} {target} not found"}}, 404)
        with self.lock:
            row.update(fields)
        return deepcopy(row), None

    async def _team_update(self, request: Request) -> JSONResponse:
        body, refused = await self._gate(request)
        if refused:
            return refused
        row, err = self._patch(self.team_model, self.teams, "team_id", body)
        return err or JSONResponse(row)

    async def _key_update(self, request: Request) -> JSONResponse:
        body, refused = await self._gate(request)
        if refused:
            return refused
        row, err = self._patch(self.key_model, self.keys, "key", body)
        return err or JSONResponse({"key": body.get("key"), **(row or {})})
