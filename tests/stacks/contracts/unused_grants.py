"""Why a role holds actions no proven request uses: every granted action is used or listed here with its reason.

Two kinds of reasons, each checked against the templates when it is applied:

* FAMILIES: a CDK grant helper writes a whole family of actions (``grant_read``: s3:GetObject*, s3:GetBucket*,
  s3:List*); an unused member is explained only when the same statement holds a member the role does use, so the
  family was granted for that use and acts on the same resources only.
* ROLE_REASONS: one role's grant (or, with no actions, a role with no requests at all), matched by role key and
  statement label; each entry must explain something in some synthesized configuration
  (tests/stacks/test_iam_contracts.py fails on a stale one).

A new unused grant fails the proof with what to do: remove the grant, or add the request that uses it to the
rules (iam_actions.py, service_side.py), or add its reason here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.stacks.contracts.iam_eval import action_matches
from tests.stacks.contracts.policies import RoleGrants, as_list


@dataclass(frozen=True)
class UnusedReason:
    name: str
    reason: str


@dataclass(frozen=True)
class Family(UnusedReason):
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleReason(UnusedReason):
    role: str = ""  # a regular expression over the role key ("Images/PipelineRole.*")
    statement: str = ".*"  # ... over the statement label
    actions: tuple[str, ...] = ()  # as the policy writes them; () = the role has no request at all
    # Checked on the role's grants when the reason is applied: the reason's premise, true of the templates.
    holds: Callable[[RoleGrants], bool] = lambda grants: True


FAMILIES: tuple[Family, ...] = (
    Family("kms-encrypt-decrypt", "CDK's grant_encrypt_decrypt (and the grants of buckets, topics and pipelines "
           "on their key) write the key's whole family on that one key; the role uses part of it",
           ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")),
    Family("s3-read-write", "CDK's bucket grants (grant_read, grant_put, grant_read_write) write the family on the "
           "objects (and bucket) they name; the role uses part of it there",
           ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:PutObject", "s3:PutObjectLegalHold",
            "s3:PutObjectRetention", "s3:PutObjectTagging", "s3:PutObjectVersionTagging", "s3:Abort*",
            "s3:DeleteObject*")),
    Family("sqs-send", "CDK's grant_send_messages writes GetQueueAttributes and GetQueueUrl beside SendMessage on "
           "the one queue", ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")),
    Family("ecr-pull-push", "CDK's grant_pull_push writes the pull actions beside the push actions on the "
           "stage's repositories", ("ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
                                    "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage",
                                    "ecr:UploadLayerPart")),
)


def _no_policy(grants: RoleGrants) -> bool:
    return not grants.sources


def _codestar_connection(grants: RoleGrants) -> bool:
    return any(":codeconnections:" in str(statement.get("Resource")) for _, statement in grants.statements())


DICOMWEB_READS = ("medical-imaging:SearchDICOMStudies", "medical-imaging:SearchDICOMSeries",
                  "medical-imaging:SearchDICOMInstances", "medical-imaging:GetDICOMSeriesMetadata",
                  "medical-imaging:GetDICOMInstance", "medical-imaging:GetDICOMInstanceMetadata",
                  "medical-imaging:GetDICOMInstanceFrames", "medical-imaging:GetDICOMBulkdata")


def _only_the_data_store(grants: RoleGrants) -> bool:
    """Every DICOMweb read is granted on one data store ARN, nothing wider."""
    resources = [as_list(statement.get("Resource")) for _, statement in grants.statements()
                 if any(str(a).startswith("medical-imaging:") for a in as_list(statement.get("Action")))]
    return bool(resources) and all(len(r) == 1 and ":datastore/" in str(r[0]) and "*" not in str(r[0])
                                   for r in resources)


ROLE_REASONS: tuple[RoleReason, ...] = (
    RoleReason("distributed-map-redrive",
               "CDK's DistributedMap grants states:RedriveExecution on the map's child executions so that a redriven "
               "run can redrive them (Step Functions 'IAM policies for using Distributed Map states'); no state of "
               "the backfill redrives, a person does from the console or CLI",
               role=r"Inference/BackfillStateMachineRole[0-9A-F]{8}$", statement=r".*DistributedMapPolicy.*",
               actions=("states:RedriveExecution",)),
    RoleReason("viewer-dicomweb-proxy",
               "The viewer's proxy (stacks/viewer/runtime/dicomweb_proxy.py) signs plain HTTPS GETs to HealthImaging's "
               "DICOMweb API with SigV4; no botocore client makes them, so no call is recorded, and parliament's "
               "Service Authorization Reference does not list these actions yet (tests/stacks/contracts/"
               "parliament_lint.py); the grant is the 8 DICOMweb read actions on the one data store",
               role=r"Viewer/DicomWebFunctionServiceRole[0-9A-F]{8}$", actions=DICOMWEB_READS,
               holds=_only_the_data_store),
    RoleReason("inference-seg-stow",
               "The inference write-back (stacks/inference/runtime/store_seg.py) stores each SEG with a plain HTTPS "
               "STOW-RS POST signed with SigV4 and reads it back with a signed WADO-RS GET; no botocore client makes "
               "them, so no call is recorded (their tests run against Orthanc behind a SigV4-checking front, "
               "tests/stacks/inference_runtime/test_store_seg.py); the grant is StoreDICOM and "
               "GetDICOMInstanceMetadata on the one data store",
               role=r"Inference/ImportSegServiceRole[0-9A-F]{8}$",
               actions=("medical-imaging:StoreDICOM", "medical-imaging:GetDICOMInstanceMetadata"),
               holds=_only_the_data_store),
    RoleReason("lambda-managed-log-group",
               "AWS's managed Lambda policies grant logs:CreateLogGroup; each platform function logs to the group its "
               "LoggingConfig names, which the stack creates, so Lambda never creates one",
               role=r".*ServiceRole[0-9A-F]{8}$", statement=r"arn:aws:iam::aws:policy/service-role/AWSLambda.*",
               actions=("logs:CreateLogGroup",)),
    RoleReason("scalable-target-role",
               "CDK's ScalableTarget creates a role for RoleARN, which Application Auto Scaling uses only for services "
               "without a service-linked role; SageMaker variants scale with the "
               "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint service-linked role, and this role has no "
               "policy at all", role=r"Serving/.*ScalableTargetRole[0-9A-F]{8}$", holds=_no_policy),
    RoleReason("approval-reads-rollback-alarms",
               "UpdateEndpoint's DeploymentConfig names these alarms; SageMaker's Auto-Rollback page asks 'your IAM "
               "execution role' to describe them without saying whose: the endpoint role has it (the proof's "
               "requirement) and the caller keeps it on the same two alarms",
               role=r"Approval/DeployApproved.*", statement=r".*ReadRollbackAlarms", actions=("cloudwatch:DescribeAlarms",)),
    RoleReason("codebuild-default-log-group",
               "CDK grants every project its default /aws/codebuild/<project> group; LogsConfig sends these builds' "
               "logs to the stack's BuildLogs group instead (granted in the statement before)",
               role=r"Images/(BuildImages|RecordImageUris)Role.*",
               actions=("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")),
    RoleReason("codebuild-report-groups",
               "CDK grants every project its <project>-* report groups; the buildspecs declare no reports",
               role=r"Images/(BuildImages|RecordImageUris)Role.*",
               actions=("codebuild:BatchPutCodeCoverages", "codebuild:BatchPutTestCases", "codebuild:CreateReport",
                        "codebuild:CreateReportGroup", "codebuild:UpdateReport")),
    RoleReason("pipeline-role-artifact-store",
               "CDK grants the pipeline role the artifact store and its key for actions without a role of their own; "
               "every action of this pipeline has its own role, which the pipeline role only assumes",
               role=r"Images/PipelineRole[0-9A-F]{8}$",
               actions=("s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*", "s3:List*", "s3:PutObject",
                        "s3:PutObjectLegalHold", "s3:PutObjectRetention", "s3:PutObjectTagging",
                        "s3:PutObjectVersionTagging", "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt",
                        "kms:GenerateDataKey*", "kms:ReEncrypt*")),
    RoleReason("codestar-legacy-prefix",
               "CDK's CodeStarConnectionsSourceAction always writes codestar-connections:UseConnection; on a "
               "codeconnections ARN it authorizes nothing, so build_pipeline.allow_connection_prefix adds "
               "codeconnections:UseConnection", role=r"Images/PipelineSource.*",
               actions=("codestar-connections:UseConnection",), holds=_codestar_connection),
    RoleReason("codestar-artifact-acl",
               "CDK's CodeStarConnectionsSourceAction grants read and object ACLs on the artifact store for clone-ref "
               "outputs shared with CodeBuild; this action only writes its zip output",
               role=r"Images/PipelineSource.*",
               actions=("s3:GetObject*", "s3:GetBucket*", "kms:Decrypt", "s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
               holds=_codestar_connection),
)


def _statement_actions(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action"))]


def reason_for(grants: RoleGrants, label: str, action: str, statement: dict[str, Any],
               used: set[str]) -> UnusedReason | None:
    """Why ``action`` (as statement ``label`` writes it) is granted though unused; ``used``: the actions proven
    requests used through the same statement."""
    granted = _statement_actions(statement)
    for family in FAMILIES:
        if action in family.actions and any(
                any(action_matches(member, u) for u in used) for member in family.actions if member in granted):
            return family
    for entry in ROLE_REASONS:
        if (entry.actions and action in entry.actions and re.fullmatch(entry.role, grants.key)
                and re.fullmatch(entry.statement, label) and entry.holds(grants)):
            return entry
    return None


def role_reason(grants: RoleGrants) -> RoleReason | None:
    """Why a role makes no request at all (an entry without actions), when its premise holds."""
    for entry in ROLE_REASONS:
        if not entry.actions and re.fullmatch(entry.role, grants.key) and entry.holds(grants):
            return entry
    return None
