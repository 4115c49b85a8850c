"""Synthesize the app the way `cdk synth` does (cdk.json's context loaded) and read the result."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from stacks.compliance import add_compliance_checks
from stacks.config import build_config
from stacks.pipeline.stack import build_release_pipeline
from stacks.platform import build_platform

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The configurations tests/stacks/conftest.py synthesizes besides cdk.json's, each once per session.
# Non-default values of the switches users flip most, synthesized together to keep the suite fast.
THING_GROUP_ARN = "arn:aws:iot:us-east-1:123456789012:thinggroup/clinic-a"
VARIANT_OVERRIDES = {
    "platform.network.natGateways": "2",
    "platform.data.noncurrentVersionExpirationDays": "400",
    "platform.data.inferenceOutputExpirationDays": "14",
    # The edge component deployed to a thing group (the Edge stack's optional deployment).
    "platform.edge.thingGroupArn": THING_GROUP_ARN,
}
CONNECTION_ARN = "arn:aws:codeconnections:us-east-1:123456789012:connection/0a1b2c3d-4e5f"
# The CodeStar source, NAT (builds in the VPC) and an instance type without local storage (volume KMS key).
CODESTAR_OVERRIDES = {
    "platform.images.source.kind": "codestar",
    "platform.images.source.connectionArn": CONNECTION_ARN,
    "platform.images.source.repository": "example-org/monai-platform",
    "platform.images.source.branch": "release",
    "platform.network.natGateways": "2",
    "platform.serving.asyncInstanceType": "ml.m5.xlarge",
    "platform.notificationEmails": '["imaging-ops@example.org"]',
}
MULTI_MODEL_OVERRIDES = {
    "platform.serving.multiModelEnabled": "true",
    "platform.serving.multiModelMaxInstances": "3",
}
MME_NAME = "monai-imaging-dev-triton-mme"  # the endpoint MULTI_MODEL_OVERRIDES adds
# importSegBack on, thresholds and an e-mail address changed: every switch of the inference and monitoring stacks.
INFERENCE_OVERRIDES = {
    "platform.serving.importSegBack": "true",
    "platform.monitoring.backlogSizeThreshold": "5",
    "platform.monitoring.backlogAgeMinutes": "15",
    "platform.monitoring.modelLatencySeconds": "120",
    "platform.monitoring.errorThreshold": "3",
    "platform.notificationEmails": '["imaging-ops@example.org"]',
}


# An existing organization trail instead of the platform's own (audit.organizationTrailArn).
ORGANIZATION_TRAIL_ARN = "arn:aws:cloudtrail:us-east-1:999999999999:trail/org-audit"
AUDIT_OVERRIDES = {"platform.audit.organizationTrailArn": ORGANIZATION_TRAIL_ARN}
# The release pipeline as a team would lay it out: the pipeline in one account, prod in another, dev in the
# pipeline's (environment-agnostic).
PIPELINE_ACCOUNT = "111111111111"
PROD_ACCOUNT = "222222222222"


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"])


def one_resource(template: Mapping[str, Any], type_: str, prefix: str = "") -> dict[str, Any]:
    """The one ``type_`` resource of ``template`` whose logical ID starts with ``prefix``; fails on none or several."""
    matches = [k for k, v in template["Resources"].items() if v["Type"] == type_ and k.startswith(prefix)]
    assert len(matches) == 1, f"expected one {type_} named {prefix}*, found {matches}"
    return dict(template["Resources"][matches[0]])


def output_name(value: Any) -> str:
    """The output of another stack that a cross-stack value reads (CDK's weak references use Fn::GetStackOutput)."""
    assert isinstance(value, dict), f"not a cross-stack reference: {value}"
    assert "Fn::GetStackOutput" in value, f"not a cross-stack reference: {value}"
    return str(value["Fn::GetStackOutput"]["OutputName"])


def as_list(value: Any) -> list[Any]:
    """An IAM statement's Action or Resource, which CloudFormation takes as one value or a list."""
    return value if isinstance(value, list) else [value]


def flatten(node: Any) -> Any:
    """Intrinsics as readable markers, so a rendered definition or ARN can be parsed and compared."""
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(str(flatten(item)) for item in items)
        if "Fn::GetStackOutput" in node:
            return f"<output:{node['Fn::GetStackOutput']['OutputName']}>"
        if "Fn::GetAtt" in node:
            return f"<{node['Fn::GetAtt'][0]}.{node['Fn::GetAtt'][1]}>"
        if "Ref" in node:
            return f"<{node['Ref']}>"
        return {key: flatten(value) for key, value in node.items()}
    if isinstance(node, list):
        return [flatten(item) for item in node]
    return node


def statements(template: Mapping[str, Any], policy_prefix: str) -> list[dict[str, Any]]:
    """The statements of the one IAM policy of ``template`` whose logical ID starts with ``policy_prefix``."""
    policy = one_resource(template, "AWS::IAM::Policy", policy_prefix)
    return list(flatten(policy["Properties"]["PolicyDocument"]["Statement"]))


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    templates: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, outdir: Path) -> Assembly:
        """The top-level stack templates of the cloud assembly in ``outdir``, by stack ID."""
        templates = {
            path.name.removesuffix(".template.json"): json.loads(path.read_text())
            for path in outdir.glob("*.template.json")
        }
        return cls(outdir=outdir, templates=templates)

    def template_files(self, *stacks: str) -> list[Path]:
        """The template files of ``stacks``, or of every top-level stack when none is named."""
        return [self.outdir / f"{stack}.template.json" for stack in stacks or sorted(self.templates)]

    def resources(self, stack: str, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.templates[stack]["Resources"].items() if v["Type"] == type_}

    def one(self, stack: str, type_: str, prefix: str = "") -> dict[str, Any]:
        """The one ``type_`` resource of ``stack`` whose logical ID starts with ``prefix``."""
        return one_resource(self.templates[stack], type_, prefix)

    def all_resources(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template.get("Resources", {}).items():
                yield stack, logical_id, resource

    def metadata_entries(self, entry_type: str) -> Iterator[tuple[str, Any]]:
        """(construct path, data) of every assembly metadata entry of ``entry_type``."""
        for metadata_file in self.outdir.glob("*.metadata.json"):
            for path, entries in json.loads(metadata_file.read_text()).items():
                for entry in entries:
                    if entry["type"] == entry_type:
                        yield path, entry["data"]


def synthesize(outdir: Path, overrides: Mapping[str, Any] | None = None) -> Assembly:
    """Build and synthesize the app with cdk.json's context plus ``overrides`` (like ``-c key=value``)."""
    context = {**cdk_json_context(), **(overrides or {})}
    app = cdk.App(context=context, outdir=str(outdir))
    build_platform(app, build_config(app.node.get_all_context()))
    add_compliance_checks(app)
    app.synth()
    return Assembly.read(outdir)


def cross_account_context() -> dict[str, Any]:
    context = copy.deepcopy(cdk_json_context())
    context["platform"]["defaults"]["pipeline"]["account"] = PIPELINE_ACCOUNT
    context["platform"]["stages"]["prod"]["account"] = PROD_ACCOUNT
    context["pipeline"] = "true"
    return context


def synthesize_pipeline(outdir: Path) -> Assembly:
    """The release pipeline (``-c pipeline=true``) in the cross-account layout; stages are nested assemblies."""
    app = cdk.App(context=cross_account_context(), outdir=str(outdir))
    build_release_pipeline(app, app.node.get_all_context())
    add_compliance_checks(app)
    app.synth()
    return Assembly.read(outdir)
