"""`costwarden run`: the daemon, or one sweep of every policy with --once."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated, Optional

import typer

from costwarden.agent.cli.options import ConfigOpt, DemoOpt, PolicyOpt, StateOpt, cli_settings


def run(config: ConfigOpt = None, policy: PolicyOpt = None, demo: DemoOpt = False, state_dir: StateOpt = None,
        once: Annotated[bool, typer.Option("--once", help="Run one sweep of every policy and exit.")] = False,
        port: Annotated[Optional[int], typer.Option(help="HTTP port for /healthz, /readyz, /metrics (0: any free port).")] = None,
        host: Annotated[Optional[str], typer.Option(help="HTTP bind address.")] = None,
        interval_minutes: Annotated[Optional[float], typer.Option(help="Minutes between sweeps of policies without a schedule.")] = None,
        role: Annotated[str, typer.Option(help=(
            "single: sweep in this process (the default). On a PostgreSQL database_url, the distributed mode: "
            "scheduler (the elected replica enqueues one job per policy, account and region each tick), worker "
            "(takes those jobs), all (both)."))] = "single") -> None:
    """Run the daemon: sweep every policy on its schedule, acting within policy limits."""
    from costwarden.agent.server.daemon import Daemon, run_once
    from costwarden.agent.server.logs import setup_logging
    from costwarden.agent.server.preflight import preflight
    from costwarden.policies.loader import load_policies

    if demo:
        from costwarden.agent.cli.demo import enter_demo_estate, require_demo_extra

        require_demo_extra()
    # every flag is checked by the settings model's own rules, exactly like its environment variable
    settings = cli_settings(config, state_dir, policy, sweep_interval_minutes=interval_minutes, http_port=port,
                            http_host=host if host is not None or not demo else "127.0.0.1")
    setup_logging(settings.log_level, json_lines=settings.json_logs)
    policies = load_policies(list(settings.policies))  # fail fast on bad policy files, before anything starts
    with ExitStack() as stack:
        if demo:
            settings = enter_demo_estate(stack, settings)
        preflight(settings)  # unusable database files: one line now, before the port is bound or a migration runs
        if role not in ("single", "scheduler", "worker", "all"):
            raise typer.BadParameter(f"--role must be single, scheduler, worker or all, not {role!r}")
        if role != "single":
            from costwarden.agent.server.fanout import conninfo

            conninfo(settings.database_url)  # one line now if the database cannot carry the queue
        if once:
            raise typer.Exit(run_once(settings, policies))
        if role == "worker":
            from costwarden.agent.server.fanout import run_worker

            raise typer.Exit(run_worker(settings, policies))
        raise typer.Exit(Daemon(settings, host=settings.http_host, port=settings.http_port, role=role).run())
