"""``monai-platform doctor``: does every stack's key resource exist and answer? Prints what is wrong and the fix.

One line per check on stdout (``ok``, ``warn`` or ``FAIL``, the stack, what was found), the fix under each problem.
Exit 0 when nothing failed (warnings included), 1 otherwise. Read-only: Describe/Get/List/Head calls with the
operator's credentials; names come from the stacks' outputs (and ``<project>-<stage>-`` for the alarms).

``make deploy`` runs it last; run it any time to see whether a deployment is healthy.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from model_code.core.s3_uri import parse_s3_uri
from platform_cli.errors import CliError
from platform_cli.outputs import OutputRef
from platform_cli.runtime import Runtime
from platform_cli.trail_selectors import datastore_events, object_events, unrecorded

OK, WARN, FAIL = "ok", "warn", "FAIL"
STABLE = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
DEMO_TAG = ("intended-use", "not-for-clinical-use")
# The stacks `make deploy` brings up (stacks/platform.py); Edge only with edge.enabled.
REQUIRED_STACKS = ("Data", "Network", "Imaging", "Audit", "Images", "Serving", "Training", "Approval", "Inference",
                   "Monitoring")
OPTIONAL_STACKS = ("Edge",)
DATA_BUCKETS = ("DicomInboxBucketName", "ImportOutputBucketName", "TrainingDataBucketName",
                "ModelArtifactsBucketName", "InferenceBucketName")
IMAGING_TOPICS = ("ImportSummaryTopicArn", "ImportAlarmTopicArn", "ImageSetCreatedTopicArn")
SERVING_TOPICS = ("SuccessTopicArn", "ErrorTopicArn")
REDEPLOY = "run `make deploy STAGE={stage}` (it resumes where it stopped)"
# CloudFormation does not re-create what was deleted behind its back: a deploy of an unchanged stack changes nothing.
DRIFT = ("it was deleted outside CloudFormation, which a deploy does not undo: `aws cloudformation detect-stack-drift "
         "--stack-name {stack}` lists what is gone; restore it as the template defines it")


@dataclass(frozen=True)
class Finding:
    status: str
    stack: str
    what: str
    fix: str = ""


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("doctor", parents=parents,
                                   help="check that every stack's key resources exist and answer; print fixes")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    findings = examine(runtime)
    if args.json:
        runtime.emit(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for line in render(findings):
            runtime.emit(line)
    return 1 if any(f.status == FAIL for f in findings) else 0


def render(findings: list[Finding]) -> Iterator[str]:
    for finding in findings:
        yield f"{finding.status:<4}  {finding.stack:<10}  {finding.what}"
        if finding.fix:
            yield f"{'':<16}fix: {finding.fix}"
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == WARN for f in findings)
    yield f"{len(findings)} checks: {failed} failed, {warned} warnings"


class Checks:
    """The checks of one deployment; each ``check_<stack>`` yields findings and never raises for AWS answers."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.deployment = runtime.deployment
        self.redeploy = REDEPLOY.format(stage=self.deployment.stage)

    def client(self, service: str) -> Any:
        return self.runtime.client(service)

    def drift(self, stack_id: str) -> str:
        return DRIFT.format(stack=self.deployment.stack_name(stack_id))

    def output(self, stack: str, key: str) -> str:
        return self.runtime.output(OutputRef(stack, key))

    # -- stacks -------------------------------------------------------------------------------------------------

    def stack_status(self, stack_id: str, *, optional: bool) -> Finding | None:
        """A finding when the stack is missing or not stable; None when it is deployed and stable."""
        name = self.deployment.stack_name(stack_id)
        try:
            [stack] = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"]
        except ClientError as error:
            if "does not exist" not in str(error):
                raise
            if optional:
                return Finding(OK, stack_id, f"stack {name} is not deployed (optional: edge.enabled false)")
            return Finding(FAIL, stack_id, f"stack {name} does not exist", self.redeploy)
        status = stack["StackStatus"]
        if status in STABLE:
            return None
        if status.endswith("_IN_PROGRESS"):
            return Finding(WARN, stack_id, f"stack {name} is {status}", "wait for it, then run doctor again")
        reason = stack.get("StackStatusReason", "")
        return Finding(FAIL, stack_id, f"stack {name} is {status}{': ' + reason if reason else ''}",
                       f"read the stack's events in CloudFormation, fix the cause, then {self.redeploy}")

    # -- per stack ----------------------------------------------------------------------------------------------

    def check_data(self) -> Iterator[Finding]:
        s3 = self.client("s3")
        for key in DATA_BUCKETS:
            bucket = self.output("Data", key)
            yield from self.head_bucket(s3, "Data", bucket)

    def head_bucket(self, s3: Any, stack: str, bucket: str) -> Iterator[Finding]:
        try:
            s3.head_bucket(Bucket=bucket)
            yield Finding(OK, stack, f"bucket {bucket} exists")
        except ClientError as error:
            yield Finding(FAIL, stack, f"bucket {bucket}: {code(error)}", self.drift(stack))

    def check_network(self) -> Iterator[Finding]:
        vpc_id = self.output("Network", "VpcId")
        vpcs = self.client("ec2").describe_vpcs(VpcIds=[vpc_id])["Vpcs"]
        state = vpcs[0]["State"] if vpcs else "missing"
        yield Finding(OK if state == "available" else FAIL, "Network", f"VPC {vpc_id} is {state}",
                      "" if state == "available" else self.redeploy)

    def check_imaging(self) -> Iterator[Finding]:
        datastore_id = self.output("Imaging", "DatastoreId")
        store = self.client("medical-imaging").get_datastore(datastoreId=datastore_id)["datastoreProperties"]
        status = store["datastoreStatus"]
        fixes = {
            "ACTIVE": "",
            "CREATING": "a data store accepts imports once ACTIVE: wait a few minutes",
            # Deleting a data store deletes its image sets; nothing brings them back.
            "DELETED": "its image sets are gone with it: " + self.drift("Imaging") + ", then import the studies again",
        }
        yield Finding(OK if status == "ACTIVE" else FAIL, "Imaging", f"data store {datastore_id} is {status}",
                      fixes.get(status, f"{status} data stores accept no import: read its state in the console, "
                                f"then {self.redeploy}"))
        for key in IMAGING_TOPICS:
            yield from self.topic("Imaging", self.output("Imaging", key))
        yield from self.queue("Imaging", self.output("Imaging", "DeadLetterQueueUrl"))

    def topic(self, stack: str, arn: str) -> Iterator[Finding]:
        try:
            self.client("sns").get_topic_attributes(TopicArn=arn)
            yield Finding(OK, stack, f"topic {arn.rsplit(':', 1)[-1]} exists")
        except ClientError as error:
            yield Finding(FAIL, stack, f"topic {arn}: {code(error)}", self.drift(stack))

    def queue(self, stack: str, url: str) -> Iterator[Finding]:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        waiting = int(attributes.get("ApproximateNumberOfMessages", "0"))
        name = url.rsplit("/", 1)[-1]
        if waiting:
            yield Finding(WARN, stack, f"{waiting} message(s) wait in {name}",
                          "read them (each is an event that failed after its retries), fix the cause, then redrive")
        else:
            yield Finding(OK, stack, f"queue {name} is empty")

    def check_audit(self) -> Iterator[Finding]:
        trail = self.output("Audit", "TrailArn")
        cloudtrail = self.client("cloudtrail")
        status = cloudtrail.get_trail_status(Name=trail)
        if not status.get("IsLogging"):
            yield Finding(FAIL, "Audit", f"trail {trail} is not logging",
                          f"aws cloudtrail start-logging --name {trail}")
        else:
            yield Finding(OK, "Audit", f"trail {trail} is logging")
        if status.get("LatestDeliveryError"):
            yield Finding(WARN, "Audit", f"trail {trail} last delivery failed: {status['LatestDeliveryError']}",
                          "check the trail bucket's policy and the KMS key policy")
        selectors = cloudtrail.get_event_selectors(TrailName=trail)
        partition = trail.split(":")[1]
        events = [event for key in DATA_BUCKETS
                  for event in object_events(f"arn:{partition}:s3:::{self.output('Data', key)}")]
        store = self.client("medical-imaging").get_datastore(datastoreId=self.output("Imaging", "DatastoreId"))
        events += datastore_events(store["datastoreProperties"]["datastoreArn"])
        missing = unrecorded(selectors, events)
        if missing:
            shown = "; ".join(event.describe() for event in missing[:4])
            yield Finding(FAIL, "Audit", f"trail {trail} does not record {len(missing)} of {len(events)} data "
                          f"events of the platform ({shown}{', ...' if len(missing) > 4 else ''})",
                          "add advanced event selectors for the buckets (AWS::S3::Object) and the data store "
                          "(AWS::MedicalImaging::Datastore, ::Imageset) to that trail, or clear "
                          "platform.audit.organizationTrailArn so the platform creates its own")
        else:
            yield Finding(OK, "Audit", f"trail {trail} records all {len(events)} probed data events "
                          "(objects of the 5 buckets, the data store's image sets)")

    def check_images(self) -> Iterator[Finding]:
        ssm, ecr = self.client("ssm"), self.client("ecr")
        prefix = f"/{self.deployment.project}-{self.deployment.stage}/images"
        for image in ("pytorch-inference", "triton-inference", "training"):
            name = f"{prefix}/{image}/uri"
            try:
                uri = ssm.get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as error:
                yield Finding(FAIL, "Images", f"image {image}: parameter {name}: {code(error)}",
                              "the image pipeline has not pushed it: " + self.redeploy)
                continue
            repository, _, tag = uri.split("/", 1)[1].rpartition(":")
            try:
                ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
                yield Finding(OK, "Images", f"image {image} {tag[:12]} is in {repository}")
            except ClientError as error:
                yield Finding(FAIL, "Images", f"image {uri}: {code(error)}",
                              "the parameter names an image the repository does not hold: run the image pipeline "
                              "again (" + self.redeploy + ")")

    def check_serving(self) -> Iterator[Finding]:
        name = self.output("Serving", "EndpointName")
        endpoint = self.client("sagemaker").describe_endpoint(EndpointName=name)
        status = endpoint["EndpointStatus"]
        instances = sum(v.get("CurrentInstanceCount", 0) for v in endpoint.get("ProductionVariants", []))
        reason = endpoint.get("FailureReason", "")
        if status == "InService":
            scale = "scaled to zero (wakes on the first request)" if instances == 0 else f"{instances} instance(s)"
            yield Finding(OK, "Serving", f"endpoint {name} is InService, {scale}")
            if reason:
                # What a rolled-back canary leaves behind: the old model serves, the failure is recorded.
                yield Finding(WARN, "Serving", f"the last update of {name} failed and was rolled back: {reason}",
                              "the previous model still serves; read the new model's endpoint log, reject its "
                              "package (monai-platform models reject) or fix it and approve a new version")
        elif status in ("Creating", "Updating", "SystemUpdating", "RollingBack"):
            yield Finding(WARN, "Serving", f"endpoint {name} is {status}", "wait for it, then run doctor again")
        else:
            yield Finding(FAIL, "Serving", f"endpoint {name} is {status}{': ' + reason if reason else ''}",
                          "read the endpoint's CloudWatch log (/aws/sagemaker/Endpoints/" + name + "), fix the "
                          "model or image, then " + self.redeploy)
        for key in SERVING_TOPICS:
            yield from self.topic("Serving", self.output("Serving", key))
        bucket, key = parse_s3_uri(self.output("Serving", "ModelDataUrl"), what="ModelDataUrl", require_key=True)
        try:
            tags = self.client("s3").get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        except ClientError as error:
            yield Finding(FAIL, "Serving", f"model archive s3://{bucket}/{key}: {code(error)}",
                          "the endpoint cannot (re)start without it: " + self.redeploy + " seeds the demo model, or "
                          "approve a trained package")
            return
        if {"Key": DEMO_TAG[0], "Value": DEMO_TAG[1]} in tags:
            yield Finding(WARN, "Serving", f"the endpoint serves the demo model (s3://{bucket}/{key}): NOT FOR "
                          "CLINICAL USE", "train on your data and approve a package (docs/training-workflow.md)")
        else:
            yield Finding(OK, "Serving", f"model archive s3://{bucket}/{key} exists")

    def check_training(self) -> Iterator[Finding]:
        arn = self.output("Training", "StateMachineArn")
        machine = self.client("stepfunctions").describe_state_machine(stateMachineArn=arn)
        status = machine.get("status", "ACTIVE")
        yield Finding(OK if status == "ACTIVE" else FAIL, "Training", f"state machine {machine['name']} is {status}",
                      "" if status == "ACTIVE" else self.redeploy)
        group = self.output("Training", "ModelPackageGroupName")
        described = self.client("sagemaker").describe_model_package_group(ModelPackageGroupName=group)
        state = described.get("ModelPackageGroupStatus", "Completed")
        yield Finding(OK if state == "Completed" else FAIL, "Training", f"model package group {group} is {state}",
                      "" if state == "Completed" else self.redeploy)
        yield from self.topic("Training", self.output("Training", "NotificationTopicArn"))

    def check_approval(self) -> Iterator[Finding]:
        function = self.output("Approval", "DeployFunctionName")
        configuration = self.client("lambda").get_function(FunctionName=function)["Configuration"]
        state = configuration.get("State", "Active")
        yield Finding(OK if state == "Active" else FAIL, "Approval", f"function {function} is {state}",
                      "" if state == "Active" else self.redeploy)
        names = [n for n in self.output("Approval", "RollbackAlarmNames").split(",") if n]
        found = {a["AlarmName"] for a in self.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]}
        for name in names:
            yield (Finding(OK, "Approval", f"rollback alarm {name} is in place") if name in found else
                   Finding(FAIL, "Approval", f"rollback alarm {name} is missing: a bad canary would not be rolled "
                           "back", self.drift("Approval")))
        yield from self.queue("Approval", self.output("Approval", "DeadLetterQueueUrl"))

    def check_inference(self) -> Iterator[Finding]:
        yield from self.queue("Inference", self.output("Inference", "DeadLetterQueueUrl"))
        yield from self.queue("Inference", self.output("Inference", "FailureQueueUrl"))

    def check_monitoring(self) -> Iterator[Finding]:
        yield from self.topic("Monitoring", self.output("Monitoring", "NotificationTopicArn"))
        prefix = f"{self.deployment.project}-{self.deployment.stage}-"
        alarms = [a for page in self.client("cloudwatch").get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=prefix) for a in page["MetricAlarms"]]
        if not alarms:
            yield Finding(FAIL, "Monitoring", f"no alarm named {prefix}*", self.redeploy)
            return
        firing = sorted(a["AlarmName"] for a in alarms if a["StateValue"] == "ALARM")
        yield Finding(OK, "Monitoring", f"{len(alarms)} alarms in place")
        if firing:
            yield Finding(WARN, "Monitoring", f"{len(firing)} alarm(s) firing: {', '.join(firing)}",
                          "each alarm's description says what to do (the notification topic has the details)")

    def check_edge(self) -> Iterator[Finding]:
        bucket, key = parse_s3_uri(self.output("Edge", "BundleS3Uri"), what="BundleS3Uri", require_key=True)
        try:
            self.client("s3").head_object(Bucket=bucket, Key=key)
            yield Finding(OK, "Edge", f"edge bundle s3://{bucket}/{key} exists")
        except ClientError as error:
            yield Finding(FAIL, "Edge", f"edge bundle s3://{bucket}/{key}: {code(error)}",
                          "devices cannot install the component: make edge-bundle edge-upload (docs/edge.md)")


def code(error: ClientError) -> str:
    detail = error.response.get("Error", {})
    return f"{detail.get('Code')}: {detail.get('Message')}".rstrip(": ")


CHECKS: dict[str, Callable[[Checks], Iterator[Finding]]] = {
    "Data": Checks.check_data,
    "Network": Checks.check_network,
    "Imaging": Checks.check_imaging,
    "Audit": Checks.check_audit,
    "Images": Checks.check_images,
    "Serving": Checks.check_serving,
    "Training": Checks.check_training,
    "Approval": Checks.check_approval,
    "Inference": Checks.check_inference,
    "Monitoring": Checks.check_monitoring,
    "Edge": Checks.check_edge,
}


def examine(runtime: Runtime) -> list[Finding]:
    """Every check of every stack; a check that AWS refuses is a finding too, and the others still run."""
    checks = Checks(runtime)
    findings: list[Finding] = []
    for stack_id in (*REQUIRED_STACKS, *OPTIONAL_STACKS):
        problem = checks.stack_status(stack_id, optional=stack_id in OPTIONAL_STACKS)
        if problem is not None:
            findings.append(problem)
            continue
        try:
            findings.extend(CHECKS[stack_id](checks))
        except ClientError as error:
            findings.append(Finding(FAIL, stack_id, f"AWS refused {error.operation_name}: {code(error)}",
                                    "doctor needs read access (Describe/Get/List) to the stage's resources"))
        except CliError as error:
            findings.append(Finding(FAIL, stack_id, error.message))
    return findings

