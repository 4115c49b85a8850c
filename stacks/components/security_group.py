"""Security groups of the platform's workloads: nothing in, HTTPS out to the VPC endpoints of AWS services."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct


def https_egress_security_group(scope: Construct, id_: str, *, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
    """A security group with nothing in and only HTTPS out (to the VPC endpoints of AWS services)."""
    security_group = ec2.SecurityGroup(scope, id_, vpc=vpc, description=description, allow_all_outbound=False)
    # The S3 gateway endpoint is reached at S3's public addresses (its prefix list), so HTTPS egress is not
    # VPC-only; the isolated subnets give it no other way out.
    security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS service endpoints")
    return security_group
