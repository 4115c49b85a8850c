"""Idle cost: compute is $0 by default, and the table prices exactly what the templates keep running."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.assembly import stack_templates
from scripts.idle_cost import COMPUTE, INFRASTRUCTURE, idle_cost, main
from stacks.pricing import (
    HOURS_PER_MONTH,
    INTERFACE_ENDPOINT_AZ,
    KMS_KEY,
    NAT_GATEWAY,
    PRICE_REGION,
    PRICES_AS_OF,
    PUBLIC_IPV4,
    SAGEMAKER_HOSTING,
    Price,
    UnknownPriceError,
)
from tests.stacks.assembly import Assembly

G4DN = SAGEMAKER_HOSTING["ml.g4dn.xlarge"].usd


def endpoint(name: str, instance_type: str, count: int, *, minimum: int | None = None) -> dict[str, Any]:
    """A template with one endpoint (and a scalable target when ``minimum`` is given)."""
    resources: dict[str, Any] = {
        "Config": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": {"ProductionVariants": [
            {"VariantName": "AllTraffic", "InstanceType": instance_type, "InitialInstanceCount": count}]}},
        "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": {
            "EndpointName": name, "EndpointConfigName": {"Fn::GetAtt": ["Config", "EndpointConfigName"]}}},
    }
    if minimum is not None:
        resources["Target"] = {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
            "ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/{name}/variant/AllTraffic",
            "MinCapacity": minimum, "MaxCapacity": 4}}
    return {"Resources": resources}


def resources(*types: str, **properties: Any) -> dict[str, Any]:
    return {"Resources": {f"R{i}": {"Type": t, "Properties": dict(properties)} for i, t in enumerate(types)}}


@pytest.mark.parametrize(
    ("template", "compute_hourly", "infrastructure_hourly"),
    [
        # An async endpoint scaled to 0 costs nothing; SageMaker's creation-time instance is not idle cost.
        (endpoint("async", "ml.g4dn.xlarge", 1, minimum=0), 0.0, 0.0),
        # Autoscaling minimum, not the initial count, is what keeps running.
        (endpoint("mme", "ml.g4dn.xlarge", 1, minimum=2), 2 * G4DN, 0.0),
        # No autoscaling: the initial count runs forever.
        (endpoint("fixed", "ml.m5.xlarge", 3), 3 * SAGEMAKER_HOSTING["ml.m5.xlarge"].usd, 0.0),
        # NAT gateways and their public addresses bill by the hour.
        (resources("AWS::EC2::NatGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP", "AWS::EC2::EIP"),
         0.0, 2 * NAT_GATEWAY.usd + 2 * PUBLIC_IPV4.usd),
        # Interface endpoints bill per AZ (one subnet each); gateway endpoints (S3) are free.
        (resources("AWS::EC2::VPCEndpoint", VpcEndpointType="Interface", SubnetIds=["a", "b", "c"]),
         0.0, 3 * INTERFACE_ENDPOINT_AZ.usd),
        (resources("AWS::EC2::VPCEndpoint", VpcEndpointType="Gateway"), 0.0, 0.0),
        # KMS keys are $1 a month each, whatever the hour.
        (resources("AWS::KMS::Key", "AWS::KMS::Key"), 0.0, 2 * KMS_KEY.usd / HOURS_PER_MONTH),
        # V2 pipelines bill execution minutes only; V1 (also the CloudFormation default) $1 a month.
        (resources("AWS::CodePipeline::Pipeline", PipelineType="V2"), 0.0, 0.0),
        (resources("AWS::CodePipeline::Pipeline"), 0.0, 1.0 / HOURS_PER_MONTH),
        # Usage-billed resources: $0 while idle.
        (resources("AWS::S3::Bucket", "AWS::HealthImaging::Datastore", "AWS::Lambda::Function"), 0.0, 0.0),
    ],
)
def test_price_table_totals(template: dict[str, Any], compute_hourly: float, infrastructure_hourly: float) -> None:
    cost = idle_cost({"Stack": template})
    assert cost.hourly(COMPUTE) == pytest.approx(compute_hourly)
    assert cost.hourly(INFRASTRUCTURE) == pytest.approx(infrastructure_hourly)
    assert cost.monthly(COMPUTE) == pytest.approx(compute_hourly * HOURS_PER_MONTH)


def test_an_instance_type_without_a_price_fails_instead_of_counting_as_free() -> None:
    with pytest.raises(UnknownPriceError, match=r"no SageMaker hosting price for 'ml\.x9\.huge' in stacks/pricing\.py"):
        idle_cost({"Stack": endpoint("e", "ml.x9.huge", 1)})


def test_prices_are_dated_and_regional() -> None:
    assert PRICE_REGION == "us-east-1"
    assert PRICES_AS_OF.year >= 2026
    assert Price(1.0, "hour", "x").monthly == pytest.approx(730.0)
    assert Price(73.0, "month", "x").hourly == pytest.approx(0.1)
    with pytest.raises(ValueError, match="per 'hour' or per 'month'"):
        Price(1.0, "day", "x")


def items(assembly: Assembly, category: str) -> list[str]:
    return [i.what for i in idle_cost(assembly.templates).items if i.category == category]


def test_default_deployment_has_no_idle_compute(assembly: Assembly) -> None:
    cost = idle_cost(assembly.templates)
    assert cost.hourly(COMPUTE) == 0.0
    (line,) = items(assembly, COMPUTE)  # the async endpoint is listed, at its minimum of 0
    assert "monai-imaging-dev-spleen-async" in line
    assert ": 0 x ml.g4dn.xlarge" in line
    infrastructure = " | ".join(items(assembly, INFRASTRUCTURE))
    assert "NAT" not in infrastructure  # must not: the dev default has no NAT gateway
    interface = [r["Properties"] for _, _, r in assembly.all_resources()
                 if r["Type"] == "AWS::EC2::VPCEndpoint" and r["Properties"]["VpcEndpointType"] == "Interface"]
    assert len(interface) >= 11  # the network stack's AWS API endpoints, one per AZ of maxAzs 2
    assert f"{len(interface)} interface VPC endpoints, {2 * len(interface)} endpoint-AZs" in infrastructure
    keys = sum(1 for _, _, r in assembly.all_resources() if r["Type"] == "AWS::KMS::Key")
    key_lines = [i for i in cost.items if "KMS" in i.what]
    assert sum(i.quantity for i in key_lines) == keys > 0


def test_nat_variant_adds_gateways_and_addresses_but_no_compute(variant_assembly: Assembly) -> None:
    cost = idle_cost(variant_assembly.templates)
    assert cost.hourly(COMPUTE) == 0.0
    infrastructure = " | ".join(items(variant_assembly, INFRASTRUCTURE))
    assert "2 NAT gateway(s)" in infrastructure
    assert "2 public IPv4 address(es)" in infrastructure


def test_the_viewer_costs_one_interface_endpoint_while_idle(assembly: Assembly, variant_assembly: Assembly) -> None:
    # The variant enables the viewer: CloudFront, Cognito, the HTTP API and its function bill per use; what runs
    # always is the DICOMweb interface endpoint its proxy reads through, in each of the two AZs.
    default, viewer = idle_cost(assembly.templates), idle_cost(variant_assembly.templates)
    def endpoint_azs(cost: Any) -> float:
        return sum(i.quantity for i in cost.items if "interface VPC endpoints" in i.what)

    assert endpoint_azs(viewer) - endpoint_azs(default) == 2
    assert "Viewer" in variant_assembly.templates
    assert not [i for i in viewer.items if i.stack == "Viewer"]  # nothing of the stack itself is always on
    for type_ in ("AWS::CloudFront::Distribution", "AWS::Cognito::UserPool", "AWS::ApiGatewayV2::Api"):
        assert any(what.startswith(type_) for what in viewer.usage_based), type_
        assert not any(what.startswith(type_) for what in default.usage_based)  # must not: the viewer is off


def test_multi_model_variant_bills_its_minimum_instance(mme_assembly: Assembly) -> None:
    cost = idle_cost(mme_assembly.templates)
    assert cost.hourly(COMPUTE) == pytest.approx(G4DN)  # multiModelMinInstances 1 x ml.g4dn.xlarge
    assert cost.monthly(COMPUTE) == pytest.approx(G4DN * 730)
    compute = items(mme_assembly, COMPUTE)
    assert any("monai-imaging-dev-triton-mme" in line and ": 1 x ml.g4dn.xlarge" in line for line in compute)


def test_make_synth_prints_compute_and_infrastructure_separately(
    assembly: Assembly, capsys: pytest.CaptureFixture[str]
) -> None:
    assert set(stack_templates(assembly.outdir)) == set(assembly.templates)  # read through the manifest
    assert main(assembly.outdir) == 0
    out = capsys.readouterr().out
    assert f"approximate us-east-1 on-demand list prices written down on {PRICES_AS_OF.isoformat()}" in out
    assert "    0.000      0.00  = compute while idle" in out
    assert "= always-on infrastructure while idle" in out
    assert "AWS::HealthImaging::Datastore x1: HealthImaging bills GB stored" in out


def test_make_synth_runs_the_idle_cost_after_the_nag_summary() -> None:
    from tests.stacks.assembly import PROJECT_ROOT

    recipe = (PROJECT_ROOT / "Makefile").read_text().split("\nsynth:", 1)[1].split("\n\n", 1)[0]
    summary, idle = recipe.index("scripts/synth_summary.py"), recipe.index("-m scripts.idle_cost $(CDK_OUT)")
    assert summary < idle  # a failing nag summary stops make before any cost is printed
