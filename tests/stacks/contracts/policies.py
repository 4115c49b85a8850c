"""Every IAM identity policy of a cloud assembly, grouped by the role it applies to, with intrinsics resolved.

A role's identity policy is the union of its inline ``Policies``, every ``AWS::IAM::Policy`` or
``AWS::IAM::ManagedPolicy`` whose ``Roles`` name it (CDK attaches across stacks through Fn::GetStackOutput), the
customer managed policies its ``ManagedPolicyArns`` name, and the AWS managed policies it names (AWS_MANAGED holds
the documents of the ones the platform uses). A managed policy attached to no role of the assembly (the edge
devices' policy, attached to a Greengrass token-exchange role outside the platform) is standalone: parliament lints
it, the IAM proof has no role to run it as.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.stacks.contracts.resolve import ResolvedAssembly, iter_resources

# The default versions of the AWS managed policies CDK attaches to the platform's functions (the IAM console's
# policy version documents: AWSLambdaBasicExecutionRole v1, AWSLambdaVPCAccessExecutionRole v3). A role naming an
# AWS managed policy missing here fails the proof, which cannot judge a document it does not have.
AWS_MANAGED: dict[str, dict[str, Any]] = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream",
                                                      "logs:PutLogEvents"], "Resource": "*"}],
    },
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole": {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AWSLambdaVPCAccessExecutionPermissions",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                       "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                       "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"],
            "Resource": "*",
        }],
    },
}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass(frozen=True)
class PolicySource:
    stack: str
    logical_id: str  # the AWS::IAM::Policy / ManagedPolicy, or the role itself for inline and AWS managed ones
    kind: str  # "inline" | "policy" | "managed" | "aws-managed"
    name: str  # PolicyName, or the managed policy's ARN
    document: dict[str, Any] = field(hash=False, compare=False)

    @property
    def label(self) -> str:
        return self.name if self.kind == "aws-managed" else f"{self.stack}/{self.logical_id}"


@dataclass
class RoleGrants:
    stack: str
    logical_id: str
    role_name: str
    role_arn: str
    trust: dict[str, Any]
    sources: list[PolicySource] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.stack}/{self.logical_id}"

    @property
    def services(self) -> list[str]:
        """The service principals that may assume the role (``lambda.amazonaws.com``, ...)."""
        return sorted(
            service
            for statement in as_list(self.trust.get("Statement"))
            for service in as_list((statement.get("Principal") or {}).get("Service"))
        )

    def statements(self) -> list[tuple[str, dict[str, Any]]]:
        """(label ``<policy>#<index> <sid>``, statement) of every statement that applies to the role."""
        out = []
        for source in self.sources:
            for index, statement in enumerate(as_list(source.document.get("Statement"))):
                out.append((f"{source.label}#{index} {statement.get('Sid', '')}".strip(), statement))
        return out


def collect(assembly: ResolvedAssembly) -> tuple[dict[str, RoleGrants], list[PolicySource]]:
    """(roles by ``<stack>/<logical id>``, standalone managed policies attached to no role of the assembly)."""
    roles: dict[str, RoleGrants] = {}
    by_name: dict[str, RoleGrants] = {}
    for stack, logical, resource in iter_resources(assembly, "AWS::IAM::Role"):
        props = assembly.resolve(stack, resource.get("Properties", {}))
        grants = RoleGrants(
            stack=stack,
            logical_id=logical,
            role_name=assembly.resolve(stack, {"Ref": logical}),
            role_arn=assembly.resolve(stack, {"Fn::GetAtt": [logical, "Arn"]}),
            trust=props.get("AssumeRolePolicyDocument", {}),
        )
        for inline in props.get("Policies", []):
            grants.sources.append(PolicySource(stack, logical, "inline", inline["PolicyName"], inline["PolicyDocument"]))
        for arn in props.get("ManagedPolicyArns", []):
            if ":iam::aws:policy/" in arn:
                if arn not in AWS_MANAGED:
                    raise KeyError(f"{grants.key} names the AWS managed policy {arn}: add its document to "
                                   "tests/stacks/contracts/policies.py AWS_MANAGED (the IAM console's default version)")
                grants.sources.append(PolicySource(stack, logical, "aws-managed", arn, AWS_MANAGED[arn]))
        roles[grants.key] = grants
        by_name[grants.role_name] = grants

    managed: dict[str, PolicySource] = {}
    standalone: list[PolicySource] = []
    for stack, logical, resource in iter_resources(assembly, "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        props = assembly.resolve(stack, resource.get("Properties", {}))
        kind = "policy" if resource["Type"] == "AWS::IAM::Policy" else "managed"
        name = props.get("PolicyName") or props.get("ManagedPolicyName") or logical
        source = PolicySource(stack, logical, kind, name, props["PolicyDocument"])
        for role_name in props.get("Roles", []):
            if role_name not in by_name:
                raise KeyError(f"{stack}/{logical} attaches to role {role_name!r}, which is not in this assembly")
            by_name[role_name].sources.append(source)
        if kind == "managed":
            managed[assembly.resolve(stack, {"Ref": logical})] = source
        if not props.get("Roles") and not props.get("Users") and not props.get("Groups"):
            standalone.append(source)
    for grants in roles.values():
        resource = assembly.stacks[grants.stack].resources[grants.logical_id]
        for arn in assembly.resolve(grants.stack, resource.get("Properties", {})).get("ManagedPolicyArns", []):
            if arn in managed:
                grants.sources.append(managed[arn])
                if managed[arn] in standalone:
                    standalone.remove(managed[arn])
    return roles, standalone


def documents(assembly: ResolvedAssembly) -> dict[str, dict[str, Any]]:
    """Every policy document the assembly defines (AWS managed ones excluded: AWS writes them), by label."""
    roles, standalone = collect(assembly)
    out = {source.label: source.document
           for grants in roles.values() for source in grants.sources if source.kind != "aws-managed"}
    out.update({source.label: source.document for source in standalone})
    return out


def stringify_conditions(document: dict[str, Any]) -> dict[str, Any]:
    """Numeric and boolean condition values as strings (IAM compares them as strings; parliament 1.6.4 crashes on
    ``s3:TlsVersion: 1.2``)."""
    def fix(value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    out = json.loads(json.dumps(document))
    for statement in as_list(out.get("Statement")):
        for operator, pairs in (statement.get("Condition") or {}).items():
            statement["Condition"][operator] = {k: fix(v) for k, v in pairs.items()}
    return out
