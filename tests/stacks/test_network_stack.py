"""Network stack: private subnets reaching AWS through endpoints; NAT only when configured; flow logs encrypted."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.network.stack import NetworkStack
from tests.stacks.assembly import VARIANT_OVERRIDES, Assembly
from tests.stacks.scaffold import Scaffold, alone

EXPECTED_INTERFACE_SERVICES = {
    "sagemaker.api",
    "sagemaker.runtime",
    "ecr.api",
    "ecr.dkr",
    "logs",
    "sts",
    "kms",
    "sns",
    "states",
    "medical-imaging",
    "runtime-medical-imaging",
}


def build(scaffold: Scaffold) -> None:
    scaffold.add(NetworkStack, "Network", logs_key=scaffold.keys.logs_key)


assembly = alone(build)
variant_assembly = alone(build, VARIANT_OVERRIDES)


def interface_services(assembly: Assembly) -> dict[str, dict[str, Any]]:
    endpoints = assembly.resources("Network", "AWS::EC2::VPCEndpoint")
    found = {}
    for endpoint in endpoints.values():
        props = endpoint["Properties"]
        if props.get("VpcEndpointType") == "Interface":
            found[props["ServiceName"].removeprefix("com.amazonaws.us-east-1.")] = props
    return found


def test_interface_endpoints_cover_every_service_the_platform_calls(assembly: Assembly) -> None:
    assert set(interface_services(assembly)) == EXPECTED_INTERFACE_SERVICES


def test_the_viewer_adds_the_dicomweb_endpoint_its_proxy_reads_through(variant_assembly: Assembly) -> None:
    # viewer.enabled (the variant): HealthImaging's DICOMweb host, dicom-medical-imaging.<region>.amazonaws.com.
    assert set(interface_services(variant_assembly)) == EXPECTED_INTERFACE_SERVICES | {"dicom-medical-imaging"}


def test_interface_endpoints_use_private_dns_and_the_https_only_group(assembly: Assembly) -> None:
    groups = assembly.resources("Network", "AWS::EC2::SecurityGroup")
    (endpoint_group_id,) = [k for k in groups if k.startswith("EndpointSecurityGroup")]
    for name, props in interface_services(assembly).items():
        assert props["PrivateDnsEnabled"] is True, name
        assert props["SecurityGroupIds"] == [{"Fn::GetAtt": [endpoint_group_id, "GroupId"]}], name
    ingress = groups[endpoint_group_id]["Properties"]["SecurityGroupIngress"]
    assert ingress == [
        {
            "CidrIp": "10.40.0.0/16",
            "Description": "HTTPS from the platform's subnets",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_s3_is_reached_through_a_gateway_endpoint(assembly: Assembly) -> None:
    gateways = [
        e for e in assembly.resources("Network", "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    assert len(gateways) == 1
    assert ".s3" in str(gateways[0]["Properties"]["ServiceName"])


@pytest.mark.parametrize(
    ("fixture", "nat_gateways", "internet_gateways", "subnets"),
    [
        ("assembly", 0, 0, 2),  # default: isolated subnets only, nothing routes to the internet
        ("variant_assembly", 2, 1, 4),  # natGateways=2: public subnets appear only to hold the NAT gateways
    ],
)
def test_nat_is_off_by_default_and_a_switch_turns_it_on(
    request: pytest.FixtureRequest, fixture: str, nat_gateways: int, internet_gateways: int, subnets: int
) -> None:
    assembly = request.getfixturevalue(fixture)
    assert len(assembly.resources("Network", "AWS::EC2::NatGateway")) == nat_gateways
    assert len(assembly.resources("Network", "AWS::EC2::InternetGateway")) == internet_gateways
    all_subnets = assembly.resources("Network", "AWS::EC2::Subnet")
    assert len(all_subnets) == subnets
    for logical_id, subnet in all_subnets.items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False, logical_id


def test_flow_logs_capture_all_traffic_into_an_encrypted_retained_log_group(assembly: Assembly) -> None:
    (flow_log,) = assembly.resources("Network", "AWS::EC2::FlowLog").values()
    assert flow_log["Properties"]["TrafficType"] == "ALL"
    assert flow_log["Properties"]["LogDestinationType"] == "cloud-watch-logs"
    group_id = flow_log["Properties"]["LogGroupName"]["Ref"]
    group = assembly.templates["Network"]["Resources"][group_id]
    assert "KmsKeyId" in group["Properties"]
    assert group["Properties"]["RetentionInDays"] == 365
    assert group["DeletionPolicy"] == "Retain"


def test_default_security_group_is_restricted(assembly: Assembly) -> None:
    assert len(assembly.resources("Network", "Custom::VpcRestrictDefaultSG")) == 1
