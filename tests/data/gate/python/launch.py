"""Training and inference capacity, created from Python (boto3, SageMaker SDK, google-cloud-compute)."""

import boto3
from google.cloud import compute_v1
from sagemaker.estimator import Estimator
from sagemaker.model import Model

TRAIN_TYPE = "ml.g5.xlarge"


def launch_workers(ami: str) -> None:
    ec2 = boto3.client("ec2")
    ec2.run_instances(
        ImageId=ami,
        InstanceType="g5.xlarge",  # the GPU worker
        MinCount=1,
        MaxCount=2,
    )


def create_endpoint() -> None:
    sm = boto3.client("sagemaker")
    sm.create_endpoint_config(
        EndpointConfigName="llm",
        ProductionVariants=[{"VariantName": "primary", "ModelName": "llm",
                             "InstanceType": "ml.g5.xlarge", "InitialInstanceCount": 2}],
    )


def train(role: str, image: str) -> None:
    est = Estimator(image_uri=image, role=role, instance_type=TRAIN_TYPE, instance_count=4)
    est.fit("s3://bucket/train")
    Model(image_uri=image, role=role).deploy(instance_type="ml.g5.xlarge", initial_instance_count=1)


def gce_vm(zone: str) -> compute_v1.Instance:
    vm = compute_v1.Instance(name="trainer")
    vm.machine_type = f"zones/{zone}/machineTypes/g2-standard-4"
    return vm


def not_a_setting(instance_type: str) -> str:
    # ec2.run_instances(InstanceType="p5.48xlarge") is a comment, and "InstanceType='x1.32xlarge'" a string
    return f"InstanceType='{instance_type}'"
