"""`audit --demo` shows every shipped detector at work: each registered detector has at least one
finding in the demo, except the few listed below with the reason they cannot have one."""

from __future__ import annotations

from collections import Counter

from costwarden.policies.loader import default_pack_path, load_policies
from costwarden.policies.registry import detectors
from tests.test_cli import demo_json  # noqa: F401 - fixture: one demo audit, as a user runs it

# Detectors no shipped pack enables (their policies are commented out in aws-estate.yml, opt-in),
# and which by design find nothing in a fresh estate: they act on marks Costwarden's own actions
# write first.
EXCEPTIONS = {
    "marked-for-op": "takes the stops a `mark-for-op` action announced days earlier (its tag on the "
                     "instance); no mark exists before such an action has run",
    "schedule": "enforces off-hours windows a `schedule` action wrote on instances; none is written "
                "before a person approves one",
}


def test_every_registered_detector_has_a_finding_in_the_demo(demo_json):  # noqa: F811
    found = Counter(f["detector"] for f in demo_json["findings"])
    # plain filters (value, and, or, not) narrow a policy's set and flag nothing of their own
    registered = {n for n, c in detectors.items() if not getattr(c, "plain", False)}
    assert set(EXCEPTIONS) <= registered, "an exception names a detector that no longer exists"
    missing = sorted(d for d in registered - set(EXCEPTIONS) if not found[d])
    assert missing == [], f"detectors with no finding in `audit --demo`: {missing}"
    # an exception stays justified only while no shipped pack turns its detector on
    shipped = {d.name for lp in load_policies([default_pack_path().parent]) for d in lp.detectors}
    assert not set(EXCEPTIONS) & shipped


def test_the_demo_loads_every_pack_and_shows_the_estate_waste(demo_json):  # noqa: F811
    by_detector = {f["detector"]: f for f in demo_json["findings"]}
    policies = {f["policy"] for f in demo_json["findings"]}
    assert {"idle-gpu-instances", "zombie-endpoints", "unattached-ebs-volumes", "orphaned-ebs-snapshots",
            "idle-elastic-ips"} <= policies  # the default pack and the AWS estate pack together
    zombie = by_detector["zombie-endpoint"]
    assert zombie["resource_id"] == "support-bot-staging"
    assert zombie["evidence"]["variants"][0]["instance_type"] == "ml.g5.2xlarge"
    assert zombie["monthly_waste_usd"] > 1000  # an ml.g5.2xlarge billed every hour for no request
    volume = by_detector["unattached-volume"]
    assert volume["evidence"]["size_gb"] == 500 and volume["monthly_waste_usd"] == 40.0  # gp3 at $0.08/GB-month
    assert by_detector["orphaned-snapshot"]["evidence"]["age_days"] >= 90
    assert by_detector["unassociated-eip"]["monthly_waste_usd"] > 0
    # the approve-mode policies plan their actions (dry-run: nothing is done)
    tools = {a["tool"] for a in demo_json["actions"]}
    assert {"aws.sagemaker-endpoint.delete_endpoint", "aws.ebs-volume.snapshot_and_delete"} <= tools
    assert all(a["status"] == "dry_run" for a in demo_json["actions"])


def test_the_demo_proposes_a_spend_cap_for_the_losing_tier(demo_json):  # noqa: F811
    """agent-chat's starter tier loses money: the finding carries its quota, the cap-spend proposal a
    budget on the starter team; both with their monthly saving, both waiting for a person."""
    [margin] = [f for f in demo_json["findings"] if f["detector"] == "negative-margin"]
    [line] = margin["evidence"]["tiers"]
    assert (margin["resource_id"], line["tier"]) == ("agent-chat", "starter")
    assert line["quota_requests_per_user_month"] > 0 and margin["monthly_waste_usd"] == line["saving_usd_month"] > 0
    [cap] = [a for a in demo_json["actions"] if a["finding_id"] == margin["id"]]
    assert cap["action"] == "cap-spend" and cap["tool"] == "llm.feature.set_limits"
    assert cap["decision"] == "needs_approval" and cap["status"] == "dry_run"
    assert cap["projected_monthly_savings_usd"] == margin["monthly_waste_usd"]
    # the budget is the tier's cost after the quota: users x cost per user after, for 30 of 30.4 days
    assert abs(cap["args"]["limits"]["max_budget"] - line["users"] * line["cost_per_user_month_after"] * 30 / (730 / 24)) < 0.1
    assert cap["args"]["target"] == "starter" and cap["args"]["limits"]["budget_duration"] == "30d"


def test_the_demo_proposes_routing_helpdesk_to_a_small_model_with_its_diff(demo_json):  # noqa: F811
    """The helpdesk trap ends in a change a person can approve: the LiteLLM config diff, its saving."""
    by_id = {f["id"]: f for f in demo_json["findings"]}
    (route,) = [a for a in demo_json["actions"] if a["tool"] == "llm.feature.route_model"]
    finding = by_id[route["finding_id"]]
    assert finding["detector"] == "oversized-model" and finding["resource_id"] == "helpdesk"
    assert route["decision"] == "needs_approval" and route["status"] == "dry_run"
    assert route["projected_monthly_savings_usd"] == finding["monthly_waste_usd"] > 0
    assert route["args"]["routes"][0]["from_model"] == "gpt-4o" and route["args"]["routes"][0]["to_model"] == "gpt-4o-mini"
    assert "-      model: openai/gpt-4o\n+      model: openai/gpt-4o-mini\n" in route["args"]["diff"]
    assert route["args"]["branch"].startswith("costwarden/route-model/helpdesk-")
