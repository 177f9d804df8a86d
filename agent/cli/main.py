"""The `costwarden` command line: the Typer app, its command groups, and the entry point.

Each command group is its own module (audit, run, approvals, policies, db, report, gate,
prices); this one assembles them in the order `--help` lists them and turns our errors into
one line on stderr. Bad input ends with exit code 2.
"""

from __future__ import annotations

import sys

import typer

from costwarden.agent import __version__
from costwarden.agent.cli.approvals import approvals_app
from costwarden.agent.cli.audit import audit
from costwarden.agent.cli.db import db_app
from costwarden.agent.cli.gate import gate
from costwarden.agent.cli.policies import policies_app
from costwarden.agent.cli.prices import prices_app
from costwarden.agent.cli.report import report
from costwarden.agent.cli.run import run
from costwarden.state.errors import CostwardenError

app = typer.Typer(name="costwarden", no_args_is_help=True, add_completion=False,
                  help="Autonomous FinOps agent for AI and cloud spend.")
app.add_typer(policies_app, name="policies")
app.add_typer(approvals_app, name="approvals")
app.add_typer(db_app, name="db")
app.command()(audit)
app.command()(run)
app.command(name="report")(report)  # the billing/token-economics report
app.command(name="gate")(gate)  # the pull-request FinOps gate
app.add_typer(prices_app, name="prices")  # prices show|refresh (AWS Price List API cache)


@app.command()
def version() -> None:
    """Print the version."""
    sys.stdout.write(f"costwarden {__version__}\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point. Usage errors are typer's (exit 2); ours are one line on stderr and exit 2."""
    try:
        app(args=argv, prog_name="costwarden")  # standalone: always ends in SystemExit
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except CostwardenError as exc:
        sys.stderr.write(f"costwarden: error: {exc}\n")  # one line, never wrapped, never a traceback
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
