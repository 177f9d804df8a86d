"""The start/stop/endpoint plumbing shared by the lean AWS fakes (one WSGI app each, on 127.0.0.1)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import make_server


class WsgiFake:
    """Subclasses define `_app(environ, start_response)` and record each operation in `_calls`
    under `_lock`; this serves the app on a free loopback port."""

    _server: Any = None
    _lock: threading.Lock
    _calls: list[str]

    @property
    def calls(self) -> list[str]:
        """Every operation received, in order (a copy: the server goes on appending)."""
        with self._lock:
            return list(self._calls)

    def start(self) -> Any:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:  # pragma: no cover - abstract
        raise NotImplementedError
