"""Network stack: a VPC whose workloads reach AWS through endpoints, with flow logs to an encrypted log group."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.compliance import acknowledge, acknowledge_grant_policy, skip_checkov_on_cdk_provider
from stacks.components.log_group import encrypted_log_group
from stacks.config import PlatformConfig
from stacks.props import WorkloadNetwork

# Every subnet group that runs platform workloads carries this name, with or without NAT.
WORKLOAD_SUBNET_GROUP = "Private"

# The AWS APIs the platform's functions, training jobs and endpoints call from inside the VPC.
INTERFACE_ENDPOINTS: dict[str, ec2.InterfaceVpcEndpointAwsService] = {
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "EcrApi": ec2.InterfaceVpcEndpointAwsService.ECR,
    "EcrDocker": ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
    "CloudWatchLogs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    # HealthImaging splits its API across two hosts: data store/import calls and image-set/frame calls.
    "HealthImaging": ec2.InterfaceVpcEndpointAwsService("medical-imaging"),
    "HealthImagingRuntime": ec2.InterfaceVpcEndpointAwsService("runtime-medical-imaging"),
}
# HealthImaging's DICOMweb host (dicom-medical-imaging.<region>.amazonaws.com, PrivateLink service
# com.amazonaws.<region>.dicom-medical-imaging, private DNS required): the viewer's proxy reads and the inference
# write-back (serving.importSegBack) stores through it. Only deployed when one of them is: it bills by the hour.
DICOMWEB_ENDPOINT = ("HealthImagingDicomWeb", ec2.InterfaceVpcEndpointAwsService("dicom-medical-imaging"))


class NetworkStack(Stack):
    """``workload`` (the VPC and its workload subnets) is what other stacks place functions, jobs and endpoints in."""

    def __init__(
        self, scope: Construct, id_: str, *, config: PlatformConfig, logs_key: kms.IKey, **kwargs: Any
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        net = config.network
        nat_enabled = net.nat_gateways > 0
        subnets = [
            ec2.SubnetConfiguration(
                name=WORKLOAD_SUBNET_GROUP,
                subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if nat_enabled else ec2.SubnetType.PRIVATE_ISOLATED,
                cidr_mask=20,
            )
        ]
        if nat_enabled:
            # Public subnets exist only to hold the NAT gateways; nothing launched there gets a public IP.
            subnets.insert(
                0,
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24, map_public_ip_on_launch=False
                ),
            )
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(net.cidr),
            max_azs=net.max_azs,
            nat_gateways=net.nat_gateways,
            subnet_configuration=subnets,
            restrict_default_security_group=True,
        )
        skip_checkov_on_cdk_provider(self, "Custom::VpcRestrictDefaultSGCustomResourceProvider")
        self.workload = WorkloadNetwork(vpc=self.vpc, subnet_group_name=WORKLOAD_SUBNET_GROUP)

        self.flow_log_group = encrypted_log_group(
            self, "FlowLogs", key=logs_key, retention_days=net.flow_log_retention_days
        )
        flow_log = self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(self.flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        acknowledge_grant_policy(flow_log.node.find_child("IAMRole"))

        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.workload.subnets]
        )
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="HTTPS from inside the VPC to the interface endpoints of AWS services",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(
            ec2.Peer.ipv4(net.cidr), ec2.Port.tcp(443), "HTTPS from the platform's subnets"
        )
        self.interface_endpoints = {
            name: self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=self.workload.subnets,
                private_dns_enabled=True,
                security_groups=[self.endpoint_security_group],
                open=False,
            )
            for name, service in (
                *INTERFACE_ENDPOINTS.items(),
                *([DICOMWEB_ENDPOINT] if config.viewer.enabled or config.serving.import_seg_back else []),
            )
        }

        if nat_enabled:
            for subnet in self.vpc.public_subnets:
                route = subnet.node.find_child("DefaultRoute")
                acknowledge(
                    route,
                    ["HIPAA.Security-VPCNoUnrestrictedRouteToIGW"],
                    "This public subnet only holds a NAT gateway (natGateways > 0 in the configuration); "
                    "workloads run in private subnets and no instance here receives a public IP.",
                )

        CfnOutput(self, "VpcId", value=self.vpc.vpc_id)
