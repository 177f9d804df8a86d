"""The fan-out tests' world: a throwaway PostgreSQL database, the many-accounts fake, worker
processes started as `costwarden run --role worker` (so a test can SIGKILL one)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.fakes.accounts import AccountsFake
from tests.fanout_estate import FAKE_ENV, account_ids, build, write_config


@dataclass
class World:
    fake: AccountsFake
    config: Path
    settings: Any
    store: Any
    app: Any
    accounts: list[str]
    expected: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def worker(self, log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.config.parent / f"{log_name}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([sys.executable, "-m", "costwarden.agent.cli", "run", "--role", "worker",
                              "--config", str(self.config)], env={**os.environ, **FAKE_ENV},
                             stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(p)
        return p

    def tick(self) -> str:
        from costwarden.agent.server.fanout_tick import enqueue_tick
        from costwarden.policies.loader import load_policies

        run_id, _ = enqueue_tick(self.settings, load_policies(list(self.settings.policies)), self.store, self.app)
        return run_id

    def wait_closed(self, run_id: str, timeout: float = 120, *, stalled: bool = False) -> Any:
        from costwarden.agent.server.fanout import retry_stalled

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.store.get_run(run_id)
            if run.status != "running":
                return run
            if stalled:  # what the scheduler's loop does every heartbeat
                retry_stalled(self.settings)
            time.sleep(0.3)
        logs = "\n".join((self.config.parent / f).read_text()[-2000:] for f in os.listdir(self.config.parent)
                         if f.endswith(".log"))
        raise AssertionError(f"run {run_id} still running after {timeout} s; worker logs:\n{logs}")


@contextmanager
def fanout_world(tmp_path: Path, database_url: str, *, n_accounts: int, regions: list[str], latency_s: float = 0.0,
                 **config: Any) -> Iterator[World]:
    from costwarden.agent.config import load_settings
    from costwarden.agent.server.fanout import ensure_queue_schema, make_app
    from costwarden.state.store import Store

    fake = AccountsFake(latency_s=latency_s).start()
    accounts = account_ids(n_accounts)
    expected = build(fake, accounts, regions, datetime.now(timezone.utc))
    cfg = write_config(tmp_path, database_url=database_url, endpoint=fake.endpoint, accounts=accounts,
                       regions=regions, **config)
    old = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    settings = load_settings(cfg)
    store = Store(settings.db_url)
    app = make_app(settings)
    app.open()
    ensure_queue_schema(app, store)
    world = World(fake, cfg, settings, store, app, accounts, expected)
    try:
        yield world
    finally:
        for p in world.workers:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ev in fake.holds.values():
            ev.set()
        app.close()
        store.close()
        fake.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
