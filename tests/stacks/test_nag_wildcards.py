"""IAM5 finding IDs derived the way cdk-nag renders them, so each wildcard is acknowledged by name."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.nag_wildcards import wildcard_findings

WILDCARD_CASES = [
    # (policy document, the findings cdk-nag would report)
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k"}]}, []),
    ({"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject*"], "Resource": "*"}]},
     ["Action::s3:GetObject*", "Resource::*"]),
    # A GetAtt joined with a wildcard key, as CDK grants render it.
    ({"Statement": [{"Effect": "Allow", "Action": "s3:PutObject",
                     "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket1", "Arn"]}, "/output/*"]]}}]},
     ["Resource::<Bucket1.Arn>/output/*"]),
    # A bucket ARN from another stack, as cdk-nag prints the not-yet-exported reference.
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                     "Resource": {"Fn::Join": ["", [{"Fn::GetStackOutput": {"OutputName": "O"}}, "/*"]]}}]},
     ['Resource::{"Fn::GetStackOutput":{"OutputName":"O"}}/*']),
    # Deny statements are not findings.
    ({"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}, []),
]


@pytest.mark.parametrize(("document", "findings"), WILDCARD_CASES)
def test_wildcard_findings_match_cdk_nag(document: dict[str, Any], findings: list[str]) -> None:
    assert wildcard_findings(document) == findings
