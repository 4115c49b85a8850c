"""Print what a synthesized deployment costs per hour and per month while nobody uses it.

Usage: python -m scripts.idle_cost [cdk.out]   (`make synth` runs it after the nag summary)

Reads the templates of the cloud assembly, so it prices what would actually be deployed: SageMaker endpoint
instances at their autoscaling minimum ("compute"), and the always-on infrastructure (NAT gateways and their
public IPs, interface VPC endpoints per AZ, KMS keys, alarms, V1 pipelines, secrets). Everything else is billed
per use and listed as $0 while idle. Prices come from stacks/pricing.py only.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.assembly import stack_templates
from stacks.pricing import (
    CLOUDWATCH_ALARM,
    CODEPIPELINE_V1,
    CODEPIPELINE_V2_NOTE,
    INTERFACE_ENDPOINT_AZ,
    KMS_KEY,
    NAT_GATEWAY,
    PRICE_CAVEAT,
    PUBLIC_IPV4,
    SECRET,
    USAGE_BASED,
    Price,
    sagemaker_hosting,
)

COMPUTE = "compute"
INFRASTRUCTURE = "always-on infrastructure"
# Application Auto Scaling creates a high and a low CloudWatch alarm for every target-tracking policy; they are
# billed like any alarm but do not appear in the template.
ALARMS_PER_TARGET_TRACKING_POLICY = 2

Templates = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class LineItem:
    category: str
    stack: str
    what: str
    quantity: float
    price: Price

    @property
    def hourly(self) -> float:
        return self.quantity * self.price.hourly

    @property
    def monthly(self) -> float:
        return self.quantity * self.price.monthly


@dataclass
class IdleCost:
    items: list[LineItem] = field(default_factory=list)
    usage_based: dict[str, str] = field(default_factory=dict)  # what costs $0 while idle, and why

    def hourly(self, category: str) -> float:
        return sum(item.hourly for item in self.items if item.category == category)

    def monthly(self, category: str) -> float:
        return sum(item.monthly for item in self.items if item.category == category)


def _resources(template: Mapping[str, Any], type_: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == type_:
            yield logical_id, resource.get("Properties", {})


def _referenced_id(value: Any) -> str | None:
    """The logical ID behind ``{"Ref": id}`` or ``{"Fn::GetAtt": [id, attr]}``."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


def _scaling_minimums(templates: Templates) -> dict[str, int]:
    """SageMaker ``endpoint/<name>/variant/<variant>`` -> the autoscaling minimum, from every stack."""
    return {
        props["ResourceId"]: int(props["MinCapacity"])
        for template in templates.values()
        for _, props in _resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
        if props.get("ServiceNamespace") == "sagemaker" and isinstance(props.get("ResourceId"), str)
    }


def _endpoint_items(stack: str, template: Mapping[str, Any], minimums: Mapping[str, int]) -> Iterator[LineItem]:
    configs = dict(_resources(template, "AWS::SageMaker::EndpointConfig"))
    for logical_id, props in _resources(template, "AWS::SageMaker::Endpoint"):
        name = props.get("EndpointName", logical_id)
        config = configs.get(_referenced_id(props.get("EndpointConfigName")) or "")
        if config is None:
            raise ValueError(f"{stack}/{logical_id}: endpoint config not found in the same template")
        for variant in config.get("ProductionVariants", []):
            if "ServerlessConfig" in variant:
                continue  # serverless inference bills per request: nothing while idle
            resource_id = f"endpoint/{name}/variant/{variant['VariantName']}"
            # Without autoscaling the endpoint keeps its initial count; with it, scale-in stops at the minimum.
            count = minimums.get(resource_id, int(variant.get("InitialInstanceCount", 1)))
            instance_type = variant["InstanceType"]
            yield LineItem(
                COMPUTE,
                stack,
                f"SageMaker endpoint {name} ({variant['VariantName']}): {count} x {instance_type} at minimum",
                count,
                sagemaker_hosting(instance_type),
            )


def _infrastructure_items(stack: str, template: Mapping[str, Any]) -> Iterator[LineItem]:
    def count(type_: str) -> int:
        return sum(1 for _ in _resources(template, type_))

    nat = count("AWS::EC2::NatGateway")
    if nat:
        yield LineItem(INFRASTRUCTURE, stack, f"{nat} NAT gateway(s)", nat, NAT_GATEWAY)
    addresses = count("AWS::EC2::EIP")
    if addresses:
        yield LineItem(INFRASTRUCTURE, stack, f"{addresses} public IPv4 address(es)", addresses, PUBLIC_IPV4)
    interface = [p for _, p in _resources(template, "AWS::EC2::VPCEndpoint") if p.get("VpcEndpointType") == "Interface"]
    if interface:
        endpoint_azs = sum(len(p.get("SubnetIds", [])) for p in interface)
        yield LineItem(
            INFRASTRUCTURE, stack, f"{len(interface)} interface VPC endpoints, {endpoint_azs} endpoint-AZs",
            endpoint_azs, INTERFACE_ENDPOINT_AZ,
        )
    keys = count("AWS::KMS::Key")
    if keys:
        yield LineItem(INFRASTRUCTURE, stack, f"{keys} KMS customer managed key(s)", keys, KMS_KEY)
    tracking = sum(1 for _, p in _resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
                   if p.get("PolicyType") == "TargetTrackingScaling")
    alarms = count("AWS::CloudWatch::Alarm") + ALARMS_PER_TARGET_TRACKING_POLICY * tracking
    if alarms:
        hidden = f", {ALARMS_PER_TARGET_TRACKING_POLICY * tracking} of them target tracking's" if tracking else ""
        yield LineItem(INFRASTRUCTURE, stack, f"{alarms} CloudWatch alarm(s){hidden}", alarms, CLOUDWATCH_ALARM)
    v1 = sum(1 for _, p in _resources(template, "AWS::CodePipeline::Pipeline") if p.get("PipelineType", "V1") == "V1")
    if v1:
        yield LineItem(INFRASTRUCTURE, stack, f"{v1} CodePipeline V1 pipeline(s)", v1, CODEPIPELINE_V1)
    secrets = count("AWS::SecretsManager::Secret")
    if secrets:
        yield LineItem(INFRASTRUCTURE, stack, f"{secrets} Secrets Manager secret(s)", secrets, SECRET)


def idle_cost(templates: Templates) -> IdleCost:
    """The idle cost of ``templates`` (stack name -> CloudFormation template)."""
    result = IdleCost()
    minimums = _scaling_minimums(templates)
    found: Counter[str] = Counter()
    for stack, template in sorted(templates.items()):
        result.items.extend(_endpoint_items(stack, template, minimums))
        result.items.extend(_infrastructure_items(stack, template))
        found.update(r.get("Type", "") for r in template.get("Resources", {}).values())
        if any(p.get("PipelineType") == "V2" for _, p in _resources(template, "AWS::CodePipeline::Pipeline")):
            result.usage_based["AWS::CodePipeline::Pipeline (V2)"] = CODEPIPELINE_V2_NOTE
    for type_, note in USAGE_BASED.items():
        if found[type_]:
            result.usage_based[f"{type_} x{found[type_]}"] = note
    return result


def render(cost: IdleCost) -> str:
    """The table `make synth` prints: compute first, so a reviewer sees at once whether idle compute is $0."""
    lines = [f"Idle cost ({PRICE_CAVEAT}):", f"  {'$/hour':>9}{'$/month':>10}  item"]
    for category in (COMPUTE, INFRASTRUCTURE):
        lines.append(f"  {category}:")
        for item in (i for i in cost.items if i.category == category):
            lines.append(f"  {item.hourly:>9.3f}{item.monthly:>10.2f}  {item.stack}: {item.what}")
        lines.append(f"  {cost.hourly(category):>9.3f}{cost.monthly(category):>10.2f}  = {category} while idle")
    total_hourly = cost.hourly(COMPUTE) + cost.hourly(INFRASTRUCTURE)
    total_monthly = cost.monthly(COMPUTE) + cost.monthly(INFRASTRUCTURE)
    lines.append(f"  {total_hourly:>9.3f}{total_monthly:>10.2f}  = idle total")
    lines.append("  $0 while idle, billed per use:")
    lines.extend(f"    {what}: {why}" for what, why in cost.usage_based.items())
    return "\n".join(lines)


def main(outdir: Path) -> int:
    print(render(idle_cost(stack_templates(outdir))))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
