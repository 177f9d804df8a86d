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
    registered = set(detectors.names())
    assert set(EXCEPTIONS) <= registered, "an exception names a detector that no longer exists"
    missing = sorted(d for d in registered - set(EXCEPTIONS) if not found[d])
    assert missing == [], f"detectors with no finding in `audit --demo`: {missing}"
    # an exception stays justified only while no shipped pack turns its detector on
    shipped = {spec.type for lp in load_policies([default_pack_path().parent]) for spec in lp.policy.filters}
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
