from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from tests.fakes.moto_server import RecordingMotoServer  # noqa: E402


@pytest.fixture(scope="session")
def moto_server() -> Iterator[RecordingMotoServer]:
    server = RecordingMotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: RecordingMotoServer, monkeypatch: pytest.MonkeyPatch) -> RecordingMotoServer:
    """A fresh moto account reached by real boto3 through AWS_ENDPOINT_URL; no real credentials."""
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    moto_server.reset()
    return moto_server


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """A test that starts the daemon in-process configures the root logger (JSON lines to stderr);
    the next test on that worker must not inherit it (alembic's INFO lines in a CLI's stderr)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


@pytest.fixture
def no_costwarden_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("COSTWARDEN_"):
            monkeypatch.delenv(k)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
