"""What the async endpoint and the multi-model endpoint are both built from: the model's place in the workload
subnets, and the variant's scalable target and its cooldowns."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct, IConstruct

from stacks.props import WorkloadNetwork

VARIANT_NAME = "AllTraffic"
# Scale in slowly (a GPU instance takes minutes to start), out quickly (requests wait for capacity meanwhile).
SCALE_IN_COOLDOWN = Duration.minutes(10)
SCALE_OUT_COOLDOWN = Duration.minutes(2)


def workload_vpc_config(
    network: WorkloadNetwork, security_group: ec2.ISecurityGroup
) -> sagemaker.CfnModel.VpcConfigProperty:
    """The model's containers in the workload (isolated) subnets behind ``security_group``."""
    return sagemaker.CfnModel.VpcConfigProperty(
        security_group_ids=[security_group.security_group_id], subnets=network.subnet_ids
    )


def variant_scalable_target(
    scope: Construct,
    id_: str,
    *,
    endpoint_name: str,
    endpoint: IConstruct,
    min_capacity: int,
    max_capacity: int,
) -> appscaling.ScalableTarget:
    """The instance count of the endpoint's one variant, registered once the endpoint exists."""
    target = appscaling.ScalableTarget(
        scope,
        id_,
        service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
        resource_id=f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}",
        scalable_dimension="sagemaker:variant:DesiredInstanceCount",
        min_capacity=min_capacity,
        max_capacity=max_capacity,
    )
    target.node.add_dependency(endpoint)
    return target
