from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# COSTWARDEN_TEST_SHIFT_DAYS=31 runs the suite with this process's clock moved that many days
# ahead (time-machine, ticking), to prove that no test depends on today's date.
SHIFT_DAYS = os.environ.get("COSTWARDEN_TEST_SHIFT_DAYS")


def pytest_configure(config: pytest.Config) -> None:
    if SHIFT_DAYS:
        import time_machine

        traveller = time_machine.travel(datetime.now(timezone.utc) + timedelta(days=float(SHIFT_DAYS)), tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    return f"clock moved {SHIFT_DAYS} days ahead (COSTWARDEN_TEST_SHIFT_DAYS)" if SHIFT_DAYS else None

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


@pytest.fixture
def no_costwarden_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("COSTWARDEN_"):
            monkeypatch.delenv(k)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
