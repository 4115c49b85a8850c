"""Acknowledge cdk-nag's AwsSolutions-IAM5 findings on one policy, finding by finding.

cdk-nag reports IAM5 once per wildcard (``AwsSolutions-IAM5[Action::s3:GetObject*]``,
``AwsSolutions-IAM5[Resource::<BucketLogicalId.Arn>/*]``), and an acknowledgment must name the exact finding:
a bare ``AwsSolutions-IAM5`` silences nothing. This module derives those IDs from the policy document the way
cdk-nag 3 does (rules/iam/IAMNoWildcardPermissions + utils/flatten-cfn-reference), so each wildcard is listed
in the assembly with its reason and a new wildcard added later still fails synth.
"""

from __future__ import annotations

import json
from typing import Any

import jsii
from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct, IValidation

from stacks.compliance import acknowledge, check_scope_and_reason


def _flatten(node: Any) -> str:
    """cdk-nag's flattenCfnReference: intrinsics as ``<LogicalId.Attr>`` / ``<Ref>``, Fn::Sub's ${} as <>."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(_flatten(item) for item in items)
        if "Fn::Sub" in node:
            return _flatten(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if "Fn::ImportValue" in node:
            return _flatten(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_findings(document: dict[str, Any]) -> list[str]:
    """The IAM5 finding suffixes (``Action::...``, ``Resource::...``) of a resolved policy document."""
    findings: dict[str, None] = {}
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        for action in _as_list(statement.get("Action", [])):
            if "*" in action:
                findings[f"Action::{action}"] = None
        for resource in _as_list(statement.get("Resource", [])):
            flat = _flatten(resource)
            if "*" in flat:
                findings[f"Resource::{flat}"] = None
    return list(findings)


@jsii.implements(IValidation)
class _AcknowledgeWildcards:
    """Runs in synth's validation phase, after cross-stack references are rendered, like cdk-nag sees them."""

    def __init__(self, policy: IConstruct, cfn: iam.CfnPolicy, reason: str) -> None:
        self._policy, self._cfn, self._reason = policy, cfn, reason

    def validate(self) -> list[str]:
        document = Stack.of(self._cfn).resolve(self._cfn.policy_document)
        rules = [f"AwsSolutions-IAM5[{finding}]" for finding in wildcard_findings(document)]
        if rules:
            acknowledge(self._policy, rules, self._reason)
        return []


def acknowledge_wildcards(policy: IConstruct, reason: str) -> None:
    """Acknowledge, at synth, every IAM5 finding of ``policy`` (a role's DefaultPolicy) with ``reason``.

    The finding IDs embed resolved ARNs (``Fn::GetStackOutput`` of another stack, ``<LogicalId.Arn>``), which
    exist only once synthesis renders references, so the acknowledgment is computed in the validation phase
    (before cdk-nag runs); the IDs appear in the assembly's ``aws:cdk:acknowledged-rules`` metadata.
    """
    cfn = policy if isinstance(policy, iam.CfnPolicy) else policy.node.default_child
    if not isinstance(cfn, iam.CfnPolicy):
        raise ValueError(f"{policy.node.path} is not an IAM policy: pass the role's DefaultPolicy")
    # Checked now, so a vague reason fails where it is written rather than deep inside synth.
    check_scope_and_reason(policy, reason)
    policy.node.add_validation(_AcknowledgeWildcards(policy, cfn, reason))
