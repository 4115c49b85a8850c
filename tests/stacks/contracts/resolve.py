"""Resolve CloudFormation intrinsics of a CDK cloud assembly into concrete placeholder values of the right shape.

Every Ref/GetAtt becomes what CloudFormation would return for that resource type (a bucket's Ref is a bucket
name, its Arn is arn:aws:s3:::<name>, a topic's Ref is its ARN, a data store's DatastoreId is 32 of [0-9a-z], ...),
so IAM linters and (action, resource) evaluation see real ARN shapes. Names are deterministic: the same resource
resolves to the same name wherever it is referenced, including through Fn::GetStackOutput (CDK 2.275's
cross-stack references), so a policy's resource and a function's environment variable agree.

    resolved = ResolvedAssembly.load(outdir)
    value = resolved.resolve("Approval", some_intrinsic)

The placeholders are in the commercial partition (``aws``) of one account: the checks that read them (asl-validator,
botocore's input shapes, IAM evaluation) need an ARN's shape, not a real account.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
PARTITION = "aws"
URL_SUFFIX = "amazonaws.com"
NO_VALUE = object()  # AWS::NoValue: the property is removed


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _lower_name(stack: str, logical_id: str, limit: int = 63) -> str:
    """CloudFormation-style generated name: <stack>-<logicalid>-<suffix>, lower case (valid for buckets)."""
    base = re.sub(r"[^a-z0-9-]", "", f"{stack}-{logical_id}".lower())
    suffix = _hex(f"{stack}/{logical_id}", 8)
    return f"{base[: limit - 9]}-{suffix}"


def _name(stack: str, logical_id: str, limit: int = 64) -> str:
    base = re.sub(r"[^A-Za-z0-9-]", "", f"{stack}-{logical_id}")
    suffix = _hex(f"{stack}/{logical_id}", 12).upper()
    return f"{base[: limit - 13]}-{suffix}"


@dataclass
class Stack:
    artifact_id: str  # "Approval"
    stack_name: str  # "monai-imaging-dev-approval"
    region: str
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template.get("Resources", {}))


@dataclass
class ResolvedAssembly:
    outdir: Path
    stacks: dict[str, Stack] = field(default_factory=dict)  # by artifact id

    @classmethod
    def load(cls, outdir: str | Path, region: str = "us-east-1") -> ResolvedAssembly:
        outdir = Path(outdir)
        manifest = json.loads((outdir / "manifest.json").read_text())
        assembly = cls(outdir)
        for artifact_id, artifact in manifest["artifacts"].items():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            props = artifact["properties"]
            env = artifact.get("environment", "")
            env_region = env.rsplit("/", 1)[-1] if env else region
            assembly.stacks[artifact_id] = Stack(
                artifact_id=artifact_id,
                stack_name=props.get("stackName", artifact_id),
                region=region if env_region in ("", "unknown-region") else env_region,
                template=json.loads((outdir / props["templateFile"]).read_text()),
            )
        return assembly

    def by_stack_name(self, stack_name: str) -> Stack:
        for stack in self.stacks.values():
            if stack.stack_name == stack_name:
                return stack
        raise KeyError(f"no stack named {stack_name} in {self.outdir}")

    # -- resolution ---------------------------------------------------------------------------------------------

    def resolve(self, stack_id: str, value: Any) -> Any:
        return _Resolver(self, self.stacks[stack_id]).resolve(value)


@dataclass
class _Resolver:
    assembly: ResolvedAssembly
    stack: Stack

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            out = [self.resolve(v) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, self.resolve(attr))
            if key == "Fn::Join":
                sep, parts = arg
                parts = self.resolve(parts)
                return self.resolve(sep).join(str(p) for p in parts)
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = self.resolve(arg)
                return text.split(sep)
            if key == "Fn::GetAZs":
                return [f"{self.stack.region}a", f"{self.stack.region}b", f"{self.stack.region}c"]
            if key == "Fn::GetStackOutput":
                return self.stack_output(arg)
            if key == "Fn::ImportValue":
                return f"import-{self.resolve(arg)}"
            if key == "Fn::If":
                raise NotImplementedError(f"Fn::If in {self.stack.artifact_id}: evaluate its condition first")
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def stack_output(self, arg: dict[str, Any]) -> Any:
        producer = self.assembly.by_stack_name(self.resolve(arg["StackName"]))
        output = producer.template["Outputs"][arg["OutputName"]]
        return _Resolver(self.assembly, producer).resolve(output["Value"])

    def sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        variables = {k: self.resolve(v) for k, v in variables.items()}

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical, attr = name.split(".", 1)
                return str(self.get_att(logical, attr))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    # -- pseudo parameters, parameters, resources ----------------------------------------------------------------

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::AccountId": ACCOUNT,
            "AWS::Region": self.stack.region,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": URL_SUFFIX,
            "AWS::StackName": self.stack.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.stack.region}:{ACCOUNT}:stack/{self.stack.stack_name}/"
            f"{_hex(self.stack.stack_name, 8)}",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        parameters = self.stack.template.get("Parameters", {})
        if name in parameters:
            return self.parameter(name, parameters[name])
        return self.resource_value(name, None)

    def parameter(self, name: str, spec: dict[str, Any]) -> str:
        default = str(spec.get("Default", ""))
        match = re.fullmatch(r"/(?P<prefix>[^/]+)/images/(?P<image>[^/]+)/uri", default)
        if match:  # the image pipeline's SSM parameters hold <registry>/<prefix>/<image>:<commit>
            return (f"{ACCOUNT}.dkr.ecr.{self.stack.region}.{URL_SUFFIX}/{match['prefix']}/{match['image']}:"
                    f"{_hex(default, 40)}")
        return default or f"param-{name}"

    def get_att(self, logical: str, attr: str) -> Any:
        return self.resource_value(logical, attr)

    def resource_value(self, logical: str, attr: str | None) -> Any:
        resource = self.stack.resources.get(logical)
        if resource is None:
            raise KeyError(f"{self.stack.artifact_id}: no resource or parameter {logical}")
        kind = resource["Type"]
        props = resource.get("Properties", {})
        region, stack = self.stack.region, self.stack.stack_name

        def prop(name: str) -> Any:
            return self.resolve(props[name]) if name in props else None

        if kind == "AWS::S3::Bucket":
            name = prop("BucketName") or _lower_name(stack, logical)
            return {
                None: name,
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.{URL_SUFFIX}",
                "RegionalDomainName": f"{name}.s3.{region}.{URL_SUFFIX}",
            }[attr]
        if kind == "AWS::IAM::Role":
            name = prop("RoleName") or _name(stack, logical)
            return {None: name, "Arn": f"arn:aws:iam::{ACCOUNT}:role/{name}", "RoleId": f"AROA{_hex(name, 16)}"}[attr]
        if kind == "AWS::IAM::ManagedPolicy":
            name = prop("ManagedPolicyName") or _name(stack, logical)
            return {None: f"arn:aws:iam::{ACCOUNT}:policy/{name}", "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/{name}"}[attr]
        if kind == "AWS::KMS::Key":
            key_id = f"{_hex(logical + stack, 8)}-{_hex(logical, 4)}-{_hex(stack, 4)}-{_hex('k' + logical, 4)}-" \
                     f"{_hex('k' + stack + logical, 12)}"
            return {None: key_id, "KeyId": key_id, "Arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}"}[attr]
        if kind == "AWS::KMS::Alias":
            return prop("AliasName")
        if kind == "AWS::SNS::Topic":
            name = prop("TopicName") or _name(stack, logical, 256)
            arn = f"arn:aws:sns:{region}:{ACCOUNT}:{name}"
            return {None: arn, "TopicArn": arn, "TopicName": name}[attr]
        if kind == "AWS::SQS::Queue":
            name = prop("QueueName") or _name(stack, logical, 80)
            return {
                None: f"https://sqs.{region}.{URL_SUFFIX}/{ACCOUNT}/{name}",
                "QueueUrl": f"https://sqs.{region}.{URL_SUFFIX}/{ACCOUNT}/{name}",
                "Arn": f"arn:aws:sqs:{region}:{ACCOUNT}:{name}",
                "QueueName": name,
            }[attr]
        if kind == "AWS::Lambda::Function":
            name = prop("FunctionName") or _name(stack, logical)
            return {None: name, "Arn": f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"}[attr]
        if kind == "AWS::Logs::LogGroup":
            name = prop("LogGroupName") or f"{stack}-{logical}"
            return {None: name, "Arn": f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{name}:*"}[attr]
        if kind == "AWS::ECR::Repository":
            name = prop("RepositoryName") or _lower_name(stack, logical)
            return {
                None: name,
                "Arn": f"arn:aws:ecr:{region}:{ACCOUNT}:repository/{name}",
                "RepositoryUri": f"{ACCOUNT}.dkr.ecr.{region}.{URL_SUFFIX}/{name}",
            }[attr]
        if kind == "AWS::HealthImaging::Datastore":
            datastore_id = _hex(f"{stack}/{logical}", 32)
            arn = f"arn:aws:medical-imaging:{region}:{ACCOUNT}:datastore/{datastore_id}"
            return {None: datastore_id, "DatastoreId": datastore_id, "DatastoreArn": arn}[attr]
        if kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::EndpointConfig", "AWS::SageMaker::Model"):
            short = kind.rsplit("::", 1)[-1]
            name_prop = {"Endpoint": "EndpointName", "EndpointConfig": "EndpointConfigName", "Model": "ModelName"}[short]
            arn_type = {"Endpoint": "endpoint", "EndpointConfig": "endpoint-config", "Model": "model"}[short]
            name = prop(name_prop) or f"{logical}-{_hex(stack + logical, 12)}"
            arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:{arn_type}/{name.lower()}"
            return {None: arn, name_prop: name, f"{short}Arn": arn, "Arn": arn}[attr]
        if kind == "AWS::SageMaker::ModelPackageGroup":
            name = prop("ModelPackageGroupName")
            arn = f"arn:aws:sagemaker:{region}:{ACCOUNT}:model-package-group/{name}"
            return {None: arn, "ModelPackageGroupArn": arn}[attr]
        if kind == "AWS::StepFunctions::StateMachine":
            name = prop("StateMachineName") or _name(stack, logical, 80)
            arn = f"arn:aws:states:{region}:{ACCOUNT}:stateMachine:{name}"
            return {None: arn, "Arn": arn, "Name": name}[attr]
        if kind == "AWS::CodeBuild::Project":
            name = prop("Name") or _name(stack, logical)
            return {None: name, "Arn": f"arn:aws:codebuild:{region}:{ACCOUNT}:project/{name}"}[attr]
        if kind == "AWS::CodePipeline::Pipeline":
            name = prop("Name") or _name(stack, logical)
            return name
        if kind == "AWS::Events::Rule":
            name = prop("Name") or _name(stack, logical)
            return {None: name, "Arn": f"arn:aws:events:{region}:{ACCOUNT}:rule/{name}"}[attr]
        if kind == "AWS::EC2::SecurityGroup":
            gid = f"sg-{_hex(stack + logical, 17)}"
            return {None: gid, "GroupId": gid}[attr]
        if kind == "AWS::EC2::Subnet":
            return {None: f"subnet-{_hex(stack + logical, 17)}", "SubnetId": f"subnet-{_hex(stack + logical, 17)}"}[attr]
        if kind == "AWS::EC2::VPC":
            return {None: f"vpc-{_hex(stack + logical, 17)}", "VpcId": f"vpc-{_hex(stack + logical, 17)}",
                    "CidrBlock": "10.40.0.0/16", "DefaultSecurityGroup": f"sg-{_hex('default' + logical, 17)}"}[attr]
        if kind == "AWS::EC2::RouteTable":
            return f"rtb-{_hex(stack + logical, 17)}"
        if kind == "AWS::GreengrassV2::ComponentVersion":
            return {None: f"arn:aws:greengrass:{region}:{ACCOUNT}:components:{logical}:versions:1.0.0",
                    "Arn": f"arn:aws:greengrass:{region}:{ACCOUNT}:components:{logical}:versions:1.0.0",
                    "ComponentName": logical, "ComponentVersion": "1.0.0"}[attr]
        # Anything else: a recognisable token; ARN-valued attributes keep an ARN shape.
        if attr and attr.endswith("Arn"):
            service = kind.split("::")[1].lower()
            return f"arn:aws:{service}:{region}:{ACCOUNT}:{logical.lower()}"
        return f"{logical}.{attr}" if attr else f"{logical}-ref"


def iter_resources(assembly: ResolvedAssembly, *types: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for stack_id, stack in assembly.stacks.items():
        for logical, resource in stack.resources.items():
            if not types or resource["Type"] in types:
                yield stack_id, logical, resource
