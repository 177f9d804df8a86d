"""What a c7n policy's names are called here: resource types, attribute keys, metric names.

Only exact equivalents are listed: a key is mapped when Costwarden's attribute holds the same
value (VolumeType is the one whose value is rewritten: Costwarden's `kind` is `ebs:<type>`).
Everything else is reported as not convertible rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# c7n resource type (with or without the aws. prefix) -> Costwarden resource type
RESOURCES = {"ec2": "aws.ec2", "ebs": "aws.ebs-volume", "ebs-snapshot": "aws.ebs-snapshot",
             "network-addr": "aws.elastic-ip", "sagemaker-endpoint": "aws.sagemaker-endpoint"}


def _ebs_kind(v: Any) -> Any:
    if isinstance(v, str) and v not in ("absent", "present", "empty", "not-null"):
        return f"ebs:{v}"
    if isinstance(v, list):
        return [f"ebs:{x}" if isinstance(x, str) else x for x in v]
    return v


def _same(v: Any) -> Any:
    return v


KeyMap = dict[str, tuple[str, Callable[[Any], Any]]]

KEYS: dict[str, KeyMap] = {
    "aws.ec2": {"InstanceId": ("resource_id", _same), "InstanceType": ("kind", _same),
                "State.Name": ("state", _same), "LaunchTime": ("launch_time", _same),
                "Placement.AvailabilityZone": ("availability_zone", _same)},
    "aws.ebs-volume": {"VolumeId": ("resource_id", _same), "VolumeType": ("kind", _ebs_kind),
                       "State": ("state", _same), "Size": ("size_gb", _same), "CreateTime": ("create_time", _same),
                       "AvailabilityZone": ("availability_zone", _same), "Iops": ("iops", _same),
                       "SnapshotId": ("snapshot_id", _same)},
    "aws.ebs-snapshot": {"SnapshotId": ("resource_id", _same), "State": ("state", _same),
                         "StartTime": ("start_time", _same), "VolumeId": ("volume_id", _same),
                         "VolumeSize": ("volume_size_gb", _same), "Description": ("description", _same)},
    "aws.elastic-ip": {"AllocationId": ("resource_id", _same), "PublicIp": ("public_ip", _same),
                       "AssociationId": ("association_id", _same), "InstanceId": ("instance_id", _same),
                       "NetworkInterfaceId": ("network_interface_id", _same), "Domain": ("domain", _same)},
    "aws.sagemaker-endpoint": {"EndpointName": ("resource_id", _same), "EndpointStatus": ("state", _same),
                               "CreationTime": ("creation_time", _same), "EndpointArn": ("arn", _same),
                               "EndpointConfigName": ("endpoint_config_name", _same)},
}
# Keys whose c7n value is a list of objects and Costwarden's a list of ids: only emptiness and length carry over.
LIST_KEYS = {("aws.ebs-volume", "Attachments"): "attachments"}

GPU_METRICS = ("GPUUtilization", "nvidia_smi_utilization_gpu", "utilization_gpu", "DCGM_FI_DEV_GPU_UTIL")
LESS = ("lt", "less-than", "le", "lte")
