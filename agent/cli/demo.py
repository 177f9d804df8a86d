"""The `--demo` glue: the one module outside the demo itself that imports `costwarden.agent.demo`.

Why one module: the demo estate ships in the package so a newcomer can run it with no cloud
account, but production code must never depend on it (tests/test_architecture.py checks that).
`audit`, `run` and `report` reach it through here, lazily, only when --demo is given; a
missing demo extra is one line naming it, not a traceback from deep inside the demo.
"""

from __future__ import annotations

import importlib.util
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from costwarden.agent.config import Settings
    from costwarden.tools.billing.settings import BillingSettings

INSTALL_HINT = "pip install 'costwarden[demo]'"
# moto's server mode (moto[server]) is what the demo estate runs in-process
SERVER_MODULES = ("moto", "flask", "flask_cors", "werkzeug")


def require_demo_extra() -> None:
    """Fail before anything starts when the demo extra is not installed (find_spec imports nothing)."""
    from costwarden.tools.errors import ToolError

    if importlib.util.find_spec("costwarden.agent.demo") is None:  # the container image leaves it out
        raise ToolError("--demo is not part of this installation (the container image does not carry the demo): "
                        f"run it from a checkout or a pip install, {INSTALL_HINT}")
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise ToolError(f"--demo needs the demo extra ({', '.join(missing)} not installed): {INSTALL_HINT}")


def demo_settings(settings: Settings, demo: dict[str, Any]) -> Settings:
    """The user's settings pointed at the running demo estate; the user's own price overrides win."""
    aws = settings.aws.model_copy(update={"endpoint_url": demo["endpoint_url"], "regions": demo["regions"]})
    update: dict[str, Any] = {"aws": aws}
    if "billing" in demo:  # the demo's FOCUS export and token-usage log, with its tiers and budgets
        merged = {**settings.billing.model_dump(exclude_unset=True), **demo["billing"]}
        update["billing"] = type(settings.billing).model_validate(merged)
    # the demo's GCP project (fake Compute API), scraped GPU cluster, and LiteLLM config repository
    for section in ("gcp", "prometheus", "gateway"):
        if section in demo:
            merged = {**getattr(settings, section).model_dump(exclude_unset=True), **demo[section]}
            update[section] = type(getattr(settings, section)).model_validate(merged)
    if "pricing" in demo:  # the demo cluster's GPU-hour cost; the user's own overrides win
        overrides = {**demo["pricing"]["overrides"], **settings.pricing.overrides}
        update["pricing"] = settings.pricing.model_copy(update={"overrides": overrides})
    return settings.model_copy(update=update)


def enter_demo_estate(stack: ExitStack, settings: Settings) -> Settings:
    """Start the demo estate (moto, fake GCP, Prometheus, billing files) for the life of `stack`."""
    require_demo_extra()
    from costwarden.agent.demo.estate import demo_estate

    return demo_settings(settings, stack.enter_context(demo_estate()))


def demo_billing(billing: BillingSettings, directory: Path, now: datetime) -> BillingSettings:
    """`billing` with the demo's FOCUS export and token-usage log, written into `directory`."""
    from costwarden.agent.demo.billing import write_demo_billing

    return type(billing).model_validate({**billing.model_dump(exclude_unset=True),
                                         **write_demo_billing(directory, now=now)})
