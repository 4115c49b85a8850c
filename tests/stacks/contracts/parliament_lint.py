"""parliament 1.6.4 over every policy statement of a cloud assembly, each finding explained or failed.

Each statement is linted on its own (so a finding names its statement), as synthesized: intrinsics resolved to
ARNs of the right shape (resolve.py), numeric condition values as strings (parliament crashes on them). parliament
runs in the tools venv (parliament_runner.py, a subprocess), like checkov.

A finding passes only with a reason here:

* RESOURCE_MISMATCH of an action parliament expanded from a CDK grant's wildcard (``s3:List*`` also matches
  s3:ListAllMyBuckets, which no bucket ARN can authorize): WILDCARD_EXPANSIONS, per wildcard, says why the
  expansion grants nothing on the statement's resources;
* any other finding: FINDING_REASONS, by issue and statement label.

Unknown actions (UNKNOWN_ACTION, UNKNOWN_PREFIX) have no filter: an action parliament 1.6.4 does not know must be
checked against the Service Authorization Reference by hand and given a FINDING_REASONS entry naming its page.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from stacks.pipeline.generated import ASSET_ROLE_REASON
from tests.stacks.contracts.policies import as_list, documents, stringify_conditions
from tests.stacks.contracts.resolve import ResolvedAssembly
from tests.stacks.contracts.service_authorization import TOOLS_VENV

RUNNER = __file__.replace("parliament_lint.py", "parliament_runner.py")
NOT_A_RESOURCE = "an account-level or access-point action: it has no bucket or object resource, so on the " \
                 "statement's bucket and object ARNs it authorizes nothing"
# CDK grant wildcard -> why its expansions that parliament finds mismatched grant nothing here.
WILDCARD_EXPANSIONS: dict[str, str] = {
    "s3:List*": f"grant_read's s3:List*: ListAllMyBuckets, ListAccessGrants*, ListAccessPoints*, ListJobs, "
                f"ListStorageLens*... are {NOT_A_RESOURCE}",
    "s3:GetObject*": f"grant_read's s3:GetObject*: GetObjectAttributes on an access point is {NOT_A_RESOURCE}",
    "s3:GetBucket*": f"grant_read's s3:GetBucket*: the access-point and account forms are {NOT_A_RESOURCE}",
}


@dataclass(frozen=True)
class FindingReason:
    issue: str
    statement: str  # a regular expression over the statement label
    reason: str
    detail: str = ".*"  # ... over the finding's detail as JSON


FINDING_REASONS: tuple[FindingReason, ...] = (
    FindingReason("RESOURCE_MISMATCH", r"Images/PipelineSourceCodePipelineActionRoleDefaultPolicy.*",
                  "CDK's CodeStarConnectionsSourceAction writes codestar-connections:UseConnection on the configured "
                  "connection ARN; a codeconnections ARN takes codeconnections:UseConnection, which the action role "
                  "also holds (build_pipeline.allow_connection_prefix)",
                  detail=r'.*"codestar-connections:UseConnection".*'),
    FindingReason("MISMATCHED_TYPE_BUT_USABLE", r"Images/BuildImagesRoleDefaultPolicy.*",
                  "CodeBuild's generated VPC statement compares ec2:Subnet with subnet ARNs under StringEquals, as the "
                  "CodeBuild User Guide's VPC policy does; parliament itself calls it usable"),
    FindingReason("RESOURCE_STAR", r"Pipeline/PipelineAssetsFileRoleDefaultPolicy.*", ASSET_ROLE_REASON,
                  detail=r'.*"codebuild:StartBuild".*'),
    FindingReason("RESOURCE_STAR", r"Pipeline/PipelineUpdatePipelineSelfMutationRoleDefaultPolicy.*",
                  "CDK Pipelines' self-mutation project runs cdk deploy of the pipeline stack, which reads stacks and "
                  "lists the bootstrap staging bucket; aws-cdk-lib grants DescribeStacks and ListBucket on '*'",
                  detail=r'.*"s3:ListBucket".*'),
    FindingReason("UNKNOWN_ACTION", r"Viewer/DicomWebFunctionServiceRoleDefaultPolicy.*",
                  "HealthImaging's DICOMweb search, series-metadata and bulk-data reads are in the Service "
                  "Authorization Reference's AWS HealthImaging page (docs.aws.amazon.com/service-authorization/latest/"
                  "reference/list_awshealthimaging.html) but not in parliament 1.6.4's copy of it",
                  detail=r'.*medical-imaging:(SearchDICOM(Studies|Series|Instances)|GetDICOM(SeriesMetadata|Bulkdata))"?'),
    FindingReason("UNKNOWN_ACTION", r"Inference/ImportSegServiceRoleDefaultPolicy.*",
                  "HealthImaging's DICOMweb STOW-RS (StoreDICOM, the inference write-back) is in the Service "
                  "Authorization Reference's AWS HealthImaging page (docs.aws.amazon.com/service-authorization/latest/"
                  "reference/list_awshealthimaging.html) but not in parliament 1.6.4's copy of it",
                  detail=r'.*medical-imaging:StoreDICOM"?'),
    FindingReason("RESOURCE_MISMATCH", r"Inference/BackfillStateMachineDistributedMapPolicy.*",
                  "CDK's DistributedMap writes DescribeExecution on execution:<machine>/*:* too: the ARN form of a "
                  "Distributed Map's child executions (Step Functions 'IAM policies for using Distributed Map "
                  "states'), newer than parliament 1.6.4's copy of the reference; it names only this machine's own",
                  detail=r'.*"states:DescribeExecution".*'),
    FindingReason("RESOURCE_STAR", r"Images/BuildImagesPolicyDocument.*",
                  "CodeBuild's own policy for builds in the VPC: the network interfaces do not exist before a build "
                  "starts (the same reason as the nag acknowledgment on this policy)"),
)


@dataclass(frozen=True)
class Finding:
    statement: str
    issue: str
    severity: str
    detail: Any
    reason: str | None  # None: unexplained

    def __str__(self) -> str:
        return f"{self.issue} ({self.severity}) in {self.statement}: {json.dumps(self.detail)[:600]}"


def statements(assembly: ResolvedAssembly) -> dict[str, dict[str, Any]]:
    """Every statement of every policy document the assembly defines, as its own document, by label."""
    out = {}
    for label, document in documents(assembly).items():
        for index, statement in enumerate(as_list(document.get("Statement"))):
            single = {"Version": "2012-10-17", "Statement": [statement]}
            out[f"{label}#{index} {statement.get('Sid', '')}".strip()] = stringify_conditions(single)
    return out


def run_parliament(linted: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    python = TOOLS_VENV / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run `make tools` (requirements-tools.txt pins parliament)")
    result = subprocess.run([str(python), RUNNER], input=json.dumps(linted), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"parliament failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout))


def _expansion_reason(action: str, statement: dict[str, Any]) -> str | None:
    for pattern in as_list(statement.get("Action")):
        if "*" in pattern and fnmatch.fnmatchcase(action.lower(), str(pattern).lower()):
            return WILDCARD_EXPANSIONS.get(str(pattern))
    return None


def judge(label: str, finding: dict[str, Any], statement: dict[str, Any]) -> Finding:
    issue, detail = finding["issue"], finding["detail"]
    reason = None
    if issue == "RESOURCE_MISMATCH" and isinstance(detail, list):
        reasons = [_expansion_reason(str(d.get("action", "")), statement) for d in detail]
        if all(reasons):
            reason = "; ".join(sorted({r for r in reasons if r}))
    if reason is None:
        reason = next((r.reason for r in FINDING_REASONS if r.issue == issue and re.fullmatch(r.statement, label)
                       and re.fullmatch(r.detail, json.dumps(detail), flags=re.DOTALL)), None)
    return Finding(label, issue, finding["severity"], detail, reason)


def lint(assembly: ResolvedAssembly) -> tuple[int, list[Finding]]:
    """(the number of statements linted, every finding judged)."""
    linted = statements(assembly)
    found = run_parliament(linted)
    return len(linted), [judge(label, finding, linted[label]["Statement"][0])
                         for label, findings in sorted(found.items()) for finding in findings]
