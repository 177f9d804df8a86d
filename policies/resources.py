"""The resource types a policy may name. tools/ registers one collector for each (a test checks)."""

from __future__ import annotations

RESOURCE_TYPES: dict[str, str] = {
    "aws.ec2": "EC2 instances (GPU and accelerator families are the candidates of idle-gpu)",
    "billing.focus": "Daily spend per provider, account and service from FOCUS 1.x billing exports",
    "billing.budget": "Monthly budgets in config (billing.budgets) with their month-to-date spend",
    "llm.feature": "LLM usage per product feature from OpenTelemetry GenAI spans or LiteLLM spend logs",
    "llm.tier": "LLM usage per pricing tier (all features), with each tier's price per user-month",
    "aws.sagemaker-endpoint": "SageMaker real-time endpoints, with their endpoint configs and instance counts",
    "aws.ebs-volume": "EBS volumes",
    "aws.ebs-snapshot": "EBS snapshots owned by the account",
    "aws.elastic-ip": "Elastic IP addresses",
    "gcp.compute": "Compute Engine instances across the configured projects (A2/A3/G2 and any with guestAccelerators)",
    "k8s.gpu-node": "GPU nodes of a Prometheus-scraped cluster running NVIDIA's DCGM exporter (report only)",
}


def provider_of(resource_type: str) -> str:
    """The provider is the resource type's prefix ("gcp.compute" -> "gcp"): the types above are named so."""
    return resource_type.split(".", 1)[0]


# What each collector puts in Resource.attrs: the keys a `value` filter reads besides the core fields
# (resource_id, kind, state, region, account, provider, resource_type, tags). The reference page
# lists them; tests/test_filters_vocab.py checks them against the collectors' own conversions.
RESOURCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "aws.ec2": ("launch_time", "availability_zone", "stopped_at"),
    "aws.ebs-volume": ("size_gb", "create_time", "availability_zone", "iops", "attachments", "snapshot_id"),
    "aws.ebs-snapshot": ("volume_id", "volume_exists", "volume_size_gb", "start_time", "description", "used_by_amis"),
    "aws.elastic-ip": ("public_ip", "association_id", "instance_id", "network_interface_id", "domain"),
    "aws.sagemaker-endpoint": ("arn", "endpoint_config_name", "creation_time", "variants", "variant_names"),
    "gcp.compute": ("zone", "name", "id", "accelerators", "gpu_count", "creation_timestamp", "provisioning_model",
                    "stopped_at"),
}
