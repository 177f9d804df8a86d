"""route-model: route a feature's calls from its flagship model to the small model the
`oversized-model` detector priced, by changing the LiteLLM router config (tools/gateway/).

The plan is pure: which feature, which model to which, and the projected saving of each move
(the finding's own figures: real token counts at price-map prices, scaled to a month). The tool's
`prepare` then reads the gateway config and adds the diff a person approves. The action's record
names the feature, the old and the new model; its after-state adds when the change was pushed.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from costwarden.policies.actions.base import Action, ActionParams, PlanContext, ToolCall
from costwarden.policies.actions.evidence import PlanError
from costwarden.policies.registry import actions
from costwarden.state.domain import DAYS_PER_MONTH, Finding, money


class RouteModelParams(ActionParams):
    branch_prefix: str = Field("costwarden/route-model/", pattern=r"^[A-Za-z0-9._/-]*$", max_length=100,
                               description="Prefix of the branch each change is pushed on.")
    pull_request: bool = Field(False, description=(
        "Also open a pull request on GitHub (gateway.github_repo; token from gateway.github_token_env)."))


def monthly(window_saving: float, window_days: float) -> Decimal:
    """A saving seen over `window_days`, per month; 0 when the window is empty (nothing was measured)."""
    if window_days <= 0:
        return Decimal(0)
    return money(Decimal(str(window_saving)) * DAYS_PER_MONTH / Decimal(str(window_days)))


@actions.register("route-model")
class RouteModel(Action):
    """Change the feature's model in the gateway config: a commit on a new branch, pushed after approval."""

    resource_types = ("llm.feature",)
    for_detectors = ("oversized-model",)
    permissions = ()  # no cloud API: git and the GitHub REST API, with the credentials of `gateway:`
    Params = RouteModelParams
    params: RouteModelParams

    def plan(self, finding: Finding, ctx: PlanContext) -> ToolCall:
        lines = finding.evidence.get("models")
        if finding.detector != "oversized-model" or not isinstance(lines, list) or not lines:
            raise PlanError(f"policy {finding.policy!r}, action 'route-model': finding {finding.id} "
                            f"({finding.detector}) is not an oversized-model finding; use it with that filter")
        days = float(finding.evidence.get("window_days") or 0)
        routes = [{"from_model": str(line["model"]), "to_model": str(line["route_to"]),
                   "monthly_saving_usd": str(monthly(float(line["cost_now_usd"]) - float(line["cost_routed_usd"]), days))}
                  for line in lines]
        args = {"feature": finding.resource_id, "routes": routes, "branch_prefix": self.params.branch_prefix,
                "pull_request": self.params.pull_request}
        return ToolCall(tool="llm.feature.route_model", args=args, projected_monthly_savings_usd=finding.monthly_waste_usd)
