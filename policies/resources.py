"""The resource types a policy may name. tools/ registers one collector for each (a test checks)."""

from __future__ import annotations

RESOURCE_TYPES: dict[str, str] = {
    "aws.ec2": "EC2 instances (GPU and accelerator families are the candidates of idle-gpu)",
}


def provider_of(resource_type: str) -> str:
    return resource_type.split(".", 1)[0]
