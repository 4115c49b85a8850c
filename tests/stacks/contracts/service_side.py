"""The AWS requests services make with the platform's roles, derived from the synthesized templates and from
recorded calls, each rule with the AWS page that says so.

``effects_of_call``: what AWS does next with another role after a recorded call (InvokeEndpointAsync -> the
endpoint's role; UpdateEndpoint -> the endpoint's role watches the rollback alarms; StartDICOMImportJob -> the data
access role; CreateModel -> the new model's execution role).

``template_requirements``: what services do with roles the templates wire up, with no code of ours in between:
Lambda (logs, dead-letter queue, VPC), EventBridge targets, SageMaker models and training jobs, Step Functions task
states (per the Step Functions IAM page of each integration), CodeBuild (the buildspec's own AWS calls) and
CodePipeline, VPC flow logs, CloudTrail's log delivery and CDK's custom resources. A template resource these rules
do not know fails the proof with the rule to add (``UnknownWiring``), so a new integration is proven as soon as it is
synthesized.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import yaml

from tests.stacks.contracts.iam_actions import Requirement, bucket_key, encrypted_send, request, split_s3_uri
from tests.stacks.contracts.recorder import PROJECT_ROOT
from tests.stacks.contracts.resolve import ACCOUNT, iter_resources
from tests.stacks.contracts.state_machines import api_of, definitions, iter_states
from tests.stacks.contracts.world import World

Needs = dict[str, list[Requirement]]  # role key -> requirements
SAMPLE_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
ENI = "eni-0123456789abcdef0"


class UnknownWiringError(KeyError):
    """A template wires a role to something no rule here describes: add the rule (with its AWS page)."""


def need(world: World, action: str, reason: str, context: tuple[tuple[str, str], ...] = (),
         **variables: Any) -> Requirement:
    """One request: ``action`` on the resources its ARN variables (``BucketName=...``) name."""
    return request(action, variables, world, reason=reason, context=context)


def object_need(world: World, action: str, uri_or_bucket: str, key: str, reason: str) -> list[Requirement]:
    bucket = split_s3_uri(uri_or_bucket)[0] if uri_or_bucket.startswith("s3://") else uri_or_bucket
    return [need(world, action, reason, BucketName=bucket, ObjectName=key)]


def image_pull(world: World, image: str, reason: str) -> list[Requirement]:
    """ECR's pull of ``<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`` (ECR User Guide, "Private
    repository policies": GetAuthorizationToken has no resource form)."""
    registry, _, rest = image.partition("/")
    repository = re.split(r"[:@]", rest, maxsplit=1)[0]
    account, region = registry.split(".")[0], registry.split(".")[3]
    out = [need(world, "ecr:GetAuthorizationToken", reason)]
    out += [need(world, action, reason, Account=account, Region=region, RepositoryName=repository)
            for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability")]
    return out


def log_writes(world: World, group: str, stream: str, reason: str, *, create_group: bool,
               describe: bool = False) -> list[Requirement]:
    out = [need(world, action, reason, LogGroupName=group, LogStreamName=stream)
           for action in ("logs:CreateLogStream", "logs:PutLogEvents")]
    if create_group:
        out.append(need(world, "logs:CreateLogGroup", reason, LogGroupName=group))
    if describe:
        out.append(need(world, "logs:DescribeLogStreams", reason, LogGroupName=group))
    return out


def vpc_interfaces(world: World, vpc: dict[str, Any], reason: str, *, permissions: bool) -> list[Requirement]:
    """The ENI calls of a service attaching to ``vpc`` (SubnetIds/Subnets, SecurityGroupIds) under a role."""
    subnet = (vpc.get("SubnetIds") or vpc.get("Subnets") or ["subnet-0"])[0]
    group = (vpc.get("SecurityGroupIds") or ["sg-0"])[0]
    out = [need(world, "ec2:CreateNetworkInterface", reason, NetworkInterfaceId=ENI, SubnetId=subnet,
                SecurityGroupId=group),
           need(world, "ec2:DeleteNetworkInterface", reason, NetworkInterfaceId=ENI),
           need(world, "ec2:DescribeNetworkInterfaces", reason), need(world, "ec2:DescribeSubnets", reason)]
    if permissions:  # SageMaker and CodeBuild share the interface with their service account
        out += [need(world, action, reason, NetworkInterfaceId=ENI) for action in
                ("ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterfacePermission")]
        out += [need(world, f"ec2:{action}", reason) for action in
                ("DescribeVpcs", "DescribeDhcpOptions", "DescribeSecurityGroups")]
    return out


# -- effects of recorded calls -----------------------------------------------------------------------------------

def _async_endpoint(params: dict[str, Any], world: World) -> list[tuple[str, Requirement]]:
    endpoint = world.endpoints.get(params["EndpointName"])
    if endpoint is None:
        return []
    output = endpoint.config.get("AsyncInferenceConfig", {}).get("OutputConfig", {})
    why = "the async endpoint (SageMaker 'Asynchronous inference': its execution role reads and writes S3)"
    bucket, key = split_s3_uri(params["InputLocation"])
    needs = object_need(world, "s3:GetObject", bucket, key, f"{why}: the request")
    needs += bucket_key(bucket, "kms:Decrypt", world, "the request object is SSE-KMS")
    result = "/".join(p for p in (params.get("S3OutputPathExtension"), params.get("Filename", "result.out")) if p)
    for path_key in ("S3OutputPath", "S3FailurePath"):
        if output.get(path_key):
            out_bucket, prefix = split_s3_uri(output[path_key])
            needs += object_need(world, "s3:PutObject", out_bucket, f"{prefix.rstrip('/')}/{result}",
                                 f"{why}: {path_key}")
            needs += bucket_key(out_bucket, "kms:GenerateDataKey", world, f"{path_key} is in an SSE-KMS bucket")
    if output.get("KmsKeyId"):
        needs.append(Requirement("kms:GenerateDataKey", (world.key_arn(output["KmsKeyId"]),),
                                 reason="the async output is encrypted with OutputConfig.KmsKeyId"))
    for topic_key in ("SuccessTopic", "ErrorTopic"):
        topic = output.get("NotificationConfig", {}).get(topic_key)
        if topic:
            needs.append(Requirement("sns:Publish", (topic,), reason=f"{why}: notifies its {topic_key}"))
            needs += encrypted_send(world.topic_keys.get(topic), "topic")
    return [(role, n) for role in endpoint.roles for n in needs]


def _rollback_alarms(params: dict[str, Any], world: World) -> list[tuple[str, Requirement]]:
    endpoint = world.endpoints.get(params["EndpointName"])
    if endpoint is None:
        return []
    alarms = (params.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
    why = ("SageMaker watches UpdateEndpoint's rollback alarms: 'Ensure that your IAM execution role has permission "
           "to perform cloudwatch:DescribeAlarms' (Auto-Rollback Configuration and Monitoring)")
    return [(role, need(world, "cloudwatch:DescribeAlarms", why, AlarmName=alarm["AlarmName"]))
            for role in endpoint.roles for alarm in alarms]


def _import_job(params: dict[str, Any], world: World) -> list[tuple[str, Requirement]]:
    if not world.has_role_arn(params["dataAccessRoleArn"]):
        return []
    why = "HealthImaging imports with the data access role (HealthImaging 'Granting access for import')"
    in_bucket, in_prefix = split_s3_uri(params["inputS3Uri"])
    out_bucket, out_prefix = split_s3_uri(params["outputS3Uri"])
    needs = [need(world, "s3:ListBucket", why, (("s3:prefix", in_prefix),), BucketName=in_bucket),
             *object_need(world, "s3:GetObject", in_bucket, f"{in_prefix}study/1.dcm", why),
             need(world, "s3:ListBucket", why, (("s3:prefix", out_prefix),), BucketName=out_bucket),
             *object_need(world, "s3:PutObject", out_bucket, f"{out_prefix}job/job-output-manifest.json", why),
             *bucket_key(in_bucket, "kms:Decrypt", world, "the import's input is SSE-KMS"),
             *bucket_key(out_bucket, "kms:GenerateDataKey", world, "the import's output is SSE-KMS")]
    role = world.role_of_arn(params["dataAccessRoleArn"])
    return [(role, n) for n in needs]


def _created_model(params: dict[str, Any], world: World) -> list[tuple[str, Requirement]]:
    if not world.has_role_arn(params["ExecutionRoleArn"]):
        return []
    role = world.role_of_arn(params["ExecutionRoleArn"])
    return [(role, n) for n in model_data(world, params["PrimaryContainer"])]


EFFECTS: dict[tuple[str, str], Callable[[dict[str, Any], World], list[tuple[str, Requirement]]]] = {
    ("sagemaker-runtime", "InvokeEndpointAsync"): _async_endpoint,
    ("sagemaker", "UpdateEndpoint"): _rollback_alarms,
    ("medical-imaging", "StartDICOMImportJob"): _import_job,
    ("sagemaker", "CreateModel"): _created_model,
}


def effects_of_call(call: dict[str, Any], world: World) -> list[tuple[str, Requirement]]:
    """(role key, requirement) of what AWS does with other roles after one successful recorded call."""
    effect = EFFECTS.get((call["service"], call["operation"]))
    if effect is None or call["outcome"] != "ok":
        return []
    return effect(call["params"], world)


# -- template wiring ---------------------------------------------------------------------------------------------

def model_data(world: World, container: dict[str, Any]) -> list[Requirement]:
    """A SageMaker model's image and model data (SageMaker 'CreateModel API: Execution Role Permissions')."""
    why = "SageMaker starts the model's container (CreateModel API: Execution Role Permissions)"
    out = image_pull(world, container["Image"], why)
    bucket, key = split_s3_uri(container["ModelDataUrl"])
    if container.get("Mode") == "MultiModel":
        key = f"{key}spleen-v1.tar.gz"  # TargetModel: an archive under the prefix
    out += object_need(world, "s3:GetObject", bucket, key, f"{why}: ModelDataUrl")
    out += bucket_key(bucket, "kms:Decrypt", world, "the model data is SSE-KMS")
    return out


def _models(world: World) -> Iterator[tuple[str, Requirement]]:
    endpoint_of_model = {}
    for endpoint in world.endpoints.values():
        for variant in endpoint.config.get("ProductionVariants", []):
            endpoint_of_model[variant["ModelName"]] = endpoint.name
    for stack, logical, resource in iter_resources(world.assembly, "AWS::SageMaker::Model"):
        props = world.assembly.resolve(stack, resource["Properties"])
        role = world.role_of_arn(props["ExecutionRoleArn"])
        name = world.assembly.resolve(stack, {"Fn::GetAtt": [logical, "ModelName"]})
        why = "SageMaker hosts the model with its execution role (CreateModel API: Execution Role Permissions)"
        needs = model_data(world, props["PrimaryContainer"])
        if name in endpoint_of_model:
            group = f"/aws/sagemaker/Endpoints/{endpoint_of_model[name]}"
            needs += log_writes(world, group, "AllTraffic/i-0123456789abcdef0", why, create_group=True, describe=True)
            needs.append(need(world, "cloudwatch:PutMetricData", why,
                              (("cloudwatch:namespace", "/aws/sagemaker/Endpoints"),)))
        if props.get("VpcConfig"):
            needs += vpc_interfaces(world, props["VpcConfig"], f"{why}: VpcConfig", permissions=True)
        yield from ((role, n) for n in needs)


def _lambda_functions(world: World) -> Iterator[tuple[str, Requirement]]:
    """Lambda acts with the execution role (Lambda Developer Guide, 'Lambda execution role': logs; 'dead-letter
    queues': sqs:SendMessage; 'Giving Lambda functions access to a VPC': the ENI actions)."""
    for stack, logical, resource in iter_resources(world.assembly, "AWS::Lambda::Function"):
        props = world.assembly.resolve(stack, resource["Properties"])
        role = world.role_of_arn(props["Role"])
        name = world.assembly.resolve(stack, {"Ref": logical})
        group = (props.get("LoggingConfig") or {}).get("LogGroup")
        why = f"Lambda runs {stack}/{logical} with its execution role"
        yield from ((role, n) for n in log_writes(
            world, group or f"/aws/lambda/{name}", "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
            f"{why}: its logs", create_group=group is None))
        queue = (props.get("DeadLetterConfig") or {}).get("TargetArn")
        if queue:
            yield role, Requirement("sqs:SendMessage", (queue,), reason=f"{why}: failed events to its DLQ")
            yield from ((role, n) for n in encrypted_send(world.queue_keys.get(queue), "queue"))
        if props.get("VpcConfig"):
            vpc_needs = vpc_interfaces(world, props["VpcConfig"], f"{why}: VpcConfig", permissions=False)
            vpc_needs += [need(world, f"ec2:{action}", f"{why}: VpcConfig", NetworkInterfaceId=ENI)
                          for action in ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses")]
            yield from ((role, n) for n in vpc_needs)


def _rule_targets(world: World) -> Iterator[tuple[str, Requirement]]:
    """EventBridge delivers to a target with its RoleArn (EventBridge User Guide, 'Using IAM roles with targets');
    an encrypted topic's publisher needs the key (SNS 'Key management': kms:GenerateDataKey* and kms:Decrypt)."""
    for stack, logical, resource in iter_resources(world.assembly, "AWS::Events::Rule"):
        for target in world.assembly.resolve(stack, resource["Properties"]).get("Targets", []):
            if "RoleArn" not in target:
                continue  # delivered by EventBridge itself (a Lambda target's resource policy)
            role, arn = world.role_of_arn(target["RoleArn"]), target["Arn"]
            if ":sns:" not in arn:
                raise UnknownWiringError(f"{stack}/{logical} delivers to {arn} with a role: add its rule to "
                                         "tests/stacks/contracts/service_side.py _rule_targets")
            yield role, Requirement("sns:Publish", (arn,), reason=f"EventBridge delivers {logical} to its topic")
            yield from ((role, n) for n in encrypted_send(world.topic_keys.get(arn), "topic"))


def _provider_role(world: World, stack: str, service_token: str) -> str:
    """The role of the Lambda function a custom resource's ServiceToken (a function ARN) names."""
    provider = service_token.rsplit(":", 1)[-1]
    function = next(r for s, lid, r in iter_resources(world.assembly, "AWS::Lambda::Function")
                    if world.assembly.resolve(s, {"Ref": lid}) == provider)
    return world.role_of_arn(world.assembly.resolve(stack, function["Properties"]["Role"]))


def _custom_resources(world: World) -> Iterator[tuple[str, Requirement]]:
    """CDK's VpcRestrictDefaultSG handler (aws-cdk-lib custom-resource-handlers,
    restrict-default-security-group-handler) revokes the default group's rules on create and restores them on
    delete."""
    for stack, _logical, resource in iter_resources(world.assembly, "Custom::VpcRestrictDefaultSG"):
        props = world.assembly.resolve(stack, resource["Properties"])
        role = _provider_role(world, stack, props["ServiceToken"])
        for action in ("RevokeSecurityGroupIngress", "RevokeSecurityGroupEgress", "AuthorizeSecurityGroupIngress",
                       "AuthorizeSecurityGroupEgress"):
            yield role, need(world, f"ec2:{action}", "CDK's handler restricts the VPC's default security group",
                             SecurityGroupId=props["DefaultSecurityGroupId"])


def _bucket_deployments(world: World) -> Iterator[tuple[str, Requirement]]:
    """CDK's BucketDeployment handler (aws-cdk-lib aws-s3-deployment, ``aws s3 cp`` of each source zip then
    ``aws s3 sync --delete`` into the destination) reads its sources and lists, writes and prunes the destination
    prefix, with the role of the function its ServiceToken names (the viewer's OHIF site)."""
    for stack, _logical, resource in iter_resources(world.assembly, "Custom::CDKBucketDeployment"):
        props = world.assembly.resolve(stack, resource["Properties"])
        role = _provider_role(world, stack, props["ServiceToken"])
        why = "CDK's BucketDeployment copies its source zips into the destination bucket"
        for bucket, key in zip(props["SourceBucketNames"], props["SourceObjectKeys"], strict=True):
            yield role, need(world, "s3:GetObject", why, BucketName=bucket, ObjectName=key)
        destination = props["DestinationBucketName"]
        prefix = props.get("DestinationBucketKeyPrefix", "")
        yield role, need(world, "s3:ListBucket", why, BucketName=destination)
        yield role, need(world, "s3:PutObject", why, BucketName=destination, ObjectName=f"{prefix}index.html")
        if str(props.get("Prune", "true")).lower() != "false":
            yield role, need(world, "s3:DeleteObject", why, BucketName=destination, ObjectName=f"{prefix}stale.js")


def _flow_logs(world: World) -> Iterator[tuple[str, Requirement]]:
    """VPC flow logs publish with DeliverLogsPermissionArn (VPC User Guide, 'IAM role for publishing flow logs to
    CloudWatch Logs')."""
    for stack, _logical, resource in iter_resources(world.assembly, "AWS::EC2::FlowLog"):
        props = world.assembly.resolve(stack, resource["Properties"])
        if "DeliverLogsPermissionArn" not in props:
            continue
        role = world.role_of_arn(props["DeliverLogsPermissionArn"])
        why = "VPC flow logs deliver to their log group"
        needs = log_writes(world, props["LogGroupName"], "eni-0123456789abcdef0-all", why, create_group=False,
                           describe=True)
        yield from ((role, n) for n in needs)



def _trail_logs(world: World) -> Iterator[tuple[str, Requirement]]:
    """A trail delivers to its CloudWatch Logs group with CloudWatchLogsRoleArn, into the stream
    ``<account>_CloudTrail_<region>`` (CloudTrail User Guide, "Role policy document for CloudTrail to use CloudWatch
    Logs for monitoring": logs:CreateLogStream and logs:PutLogEvents on that stream)."""
    for stack, _logical, resource in iter_resources(world.assembly, "AWS::CloudTrail::Trail"):
        props = world.assembly.resolve(stack, resource["Properties"])
        if "CloudWatchLogsRoleArn" not in props:
            continue
        group = props["CloudWatchLogsLogGroupArn"].split(":log-group:", 1)[1].split(":", 1)[0]
        stream = f"{ACCOUNT}_CloudTrail_{world.region}"
        needs = log_writes(world, group, stream, "CloudTrail delivers the trail's events to its log group",
                           create_group=False)
        yield from ((world.role_of_arn(props["CloudWatchLogsRoleArn"]), n) for n in needs)

# -- Step Functions ----------------------------------------------------------------------------------------------

def sample(definition: dict[str, Any], path: str) -> str | None:
    """A value a JSONPath may hold, when an earlier Pass state builds it with States.Format: ``$.job.name`` <- the
    NameJob state's ``"name.$": "States.Format('<prefix>-train-{}{}', ...)"``; each ``{}`` a sample ID."""
    parent, _, member = path.rpartition(".")
    for _, state in iter_states(definition):
        if state.get("Type") == "Pass" and state.get("ResultPath") == parent:
            expression = (state.get("Parameters") or {}).get(f"{member}.$", "")
            match = re.match(r"States\.Format\('([^']*)'", expression)
            if match:
                return match.group(1).replace("{}", SAMPLE_ID[:8], 1).replace("{}", SAMPLE_ID[8:16])
    return None


def _value(parameters: dict[str, Any], name: str, definition: dict[str, Any]) -> str | None:
    if name in parameters:
        return str(parameters[name])
    dynamic = parameters.get(f"{name}.$")
    return sample(definition, dynamic) if isinstance(dynamic, str) else None


def _training_task(world: World, parameters: dict[str, Any], definition: dict[str, Any], why: str,
                   sync: bool) -> Iterator[tuple[str | None, Requirement]]:
    """sagemaker:createTrainingJob[.sync] (Step Functions 'IAM policies for Amazon SageMaker AI': Create/Describe/
    StopTrainingJob on the job, ListTags on *, PassRole, and the managed rule that .sync polls through)."""
    name = _value(parameters, "TrainingJobName", definition) or "unknown-job"
    actions = ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob") if sync else ("CreateTrainingJob",)
    for action in actions:
        yield None, need(world, f"sagemaker:{action}", why, TrainingJobName=name.lower())
    yield None, need(world, "sagemaker:ListTags", why)
    yield None, Requirement("iam:PassRole", (parameters["RoleArn"],), (("iam:PassedToService",
                                                                          "sagemaker.amazonaws.com"),), why)
    if sync:
        for action in ("PutTargets", "PutRule", "DescribeRule"):
            yield None, need(world, f"events:{action}", why,
                             RuleName="StepFunctionsGetEventsForSageMakerTrainingJobsRule")
    role = world.role_of_arn(parameters["RoleArn"])
    yield from ((role, n) for n in training_job(world, parameters, definition))


def training_job(world: World, parameters: dict[str, Any], definition: dict[str, Any]) -> list[Requirement]:
    """What SageMaker does with a training job's role (SageMaker 'CreateTrainingJob API: Execution Role
    Permissions'): image, channels, checkpoints, output, logs, metrics, VPC, the volume key."""
    why = "SageMaker runs the training job with its role (CreateTrainingJob API: Execution Role Permissions)"
    out = image_pull(world, parameters["AlgorithmSpecification"]["TrainingImage"], why)
    for channel in parameters.get("InputDataConfig", []):
        uri = _value(channel["DataSource"]["S3DataSource"], "S3Uri", definition)
        if uri:
            bucket, prefix = split_s3_uri(uri)
            out.append(need(world, "s3:ListBucket", f"{why}: channel", (("s3:prefix", prefix),), BucketName=bucket))
            out += object_need(world, "s3:GetObject", bucket, f"{prefix}case-1/image.nii.gz", f"{why}: channel")
            out += bucket_key(bucket, "kms:Decrypt", world, "the channel's objects are SSE-KMS")
    checkpoint = _value(parameters.get("CheckpointConfig") or {}, "S3Uri", definition)
    if checkpoint:
        bucket, prefix = split_s3_uri(checkpoint)
        out.append(need(world, "s3:ListBucket", f"{why}: checkpoints", (("s3:prefix", prefix),), BucketName=bucket))
        for action in ("s3:GetObject", "s3:PutObject"):
            out += object_need(world, action, bucket, f"{prefix}checkpoint.pt", f"{why}: checkpoints")
        out += bucket_key(bucket, "kms:Decrypt", world, "checkpoints are read back from an SSE-KMS bucket")
        out += bucket_key(bucket, "kms:GenerateDataKey", world, "checkpoints go to an SSE-KMS bucket")
    output = parameters["OutputDataConfig"]
    bucket, prefix = split_s3_uri(output["S3OutputPath"])
    out += object_need(world, "s3:PutObject", bucket, f"{prefix}job/output/model.tar.gz", f"{why}: output")
    out += bucket_key(bucket, "kms:GenerateDataKey", world, "the output goes to an SSE-KMS bucket")
    if output.get("KmsKeyId"):
        out.append(Requirement("kms:Encrypt", (world.key_arn(output["KmsKeyId"]),),
                               reason=f"{why}: OutputDataConfig.KmsKeyId"))
    volume_key = parameters["ResourceConfig"].get("VolumeKmsKeyId")
    if volume_key:
        out.append(Requirement("kms:CreateGrant", (world.key_arn(volume_key),),
                               (("kms:GrantIsForAWSResource", "true"),), f"{why}: VolumeKmsKeyId"))
    job = _value(parameters, "TrainingJobName", definition) or "unknown-job"
    out += log_writes(world, "/aws/sagemaker/TrainingJobs", f"{job}/algo-1-1700000000", why, create_group=True,
                      describe=True)
    out.append(need(world, "cloudwatch:PutMetricData", why, (("cloudwatch:namespace",
                                                              "/aws/sagemaker/TrainingJobs"),)))
    if parameters.get("VpcConfig"):
        out += vpc_interfaces(world, parameters["VpcConfig"], f"{why}: VpcConfig", permissions=True)
    return out


def _task(world: World, state_name: str, state: dict[str, Any],
          definition: dict[str, Any]) -> Iterator[tuple[str | None, Requirement]]:
    resource, parameters = state["Resource"], state.get("Parameters", {})
    why = f"task state {state_name} ({resource.split(':::', 1)[-1]})"
    if resource.endswith(":::sagemaker:createTrainingJob.sync") or resource.endswith(":::sagemaker:createTrainingJob"):
        yield from _training_task(world, parameters, definition, why, resource.endswith(".sync"))
    elif resource.endswith(":::sns:publish"):
        # Step Functions 'IAM policies for Amazon SNS'; the topic's key as for any publisher (SNS 'Key management'),
        # which CDK's SnsPublish task does not grant (aws/aws-cdk#32303).
        yield None, Requirement("sns:Publish", (parameters["TopicArn"],), reason=why)
        yield from ((None, n) for n in encrypted_send(world.topic_keys.get(parameters["TopicArn"]), "topic"))
    elif resource.endswith(":::lambda:invoke") or re.match(r"^arn:[^:]+:lambda:[^:]+:\d{12}:function:", resource):
        # Step Functions 'IAM policies for AWS Lambda': lambda:InvokeFunction on the function (the optimized
        # integration names it in FunctionName, a Lambda ARN Resource is the function itself).
        function = parameters.get("FunctionName", resource) if resource.endswith(":::lambda:invoke") else resource
        yield None, Requirement("lambda:InvokeFunction", (str(function),), reason=why)
    elif ":::aws-sdk:" in resource:
        # SDK integrations call the API with the role: the API's own IAM action (Step Functions 'Call other AWS
        # services'), on the resources its static parameters name.
        service, operation = api_of(resource) or ("", "")
        from botocore.session import get_session

        signing = get_session().get_service_model(service).signing_name
        static = {k: v for k, v in parameters.items() if not k.endswith(".$")}
        if (signing, operation) == ("sagemaker", "CreateModelPackage"):
            # A versioned package is created as model-package/<group>/<version> (its ARN's form); the reference's
            # resource types are both optional, so the request is judged on the package it creates.
            static = {"ModelPackageName": f"{static['ModelPackageGroupName']}/1"}
        yield None, request(f"{signing}:{operation}", static, world, reason=why)
    else:
        raise UnknownWiringError(f"{state_name} calls {resource}: add its Step Functions IAM page's rule to "
                                 "tests/stacks/contracts/service_side.py _task")


def _distributed_map(world: World, state_name: str, state: dict[str, Any],
                     state_machine_name: str) -> Iterator[Requirement]:
    """Step Functions 'IAM policies for using Distributed Map states': the map starts its child workflows as
    executions of the parent state machine (StartExecution on it; DescribeExecution and StopExecution on its
    executions); an S3 ItemReader reads its object with s3:GetObject (kms:Decrypt from an SSE-KMS bucket)."""
    why = f"Distributed Map {state_name}"
    machine = world.arn("states", f"stateMachine:{state_machine_name}")
    yield Requirement("states:StartExecution", (machine,), reason=f"{why}: starts its child workflows")
    for action in ("states:DescribeExecution", "states:StopExecution"):
        yield Requirement(action, (world.arn("states", f"execution:{state_machine_name}:{SAMPLE_ID}"),),
                          reason=f"{why}: follows (and on failure stops) its child workflows")
    reader = state.get("ItemReader") or {}
    if reader.get("Resource", "").endswith(":::s3:getObject"):
        bucket = reader["Parameters"]["Bucket"]
        yield from object_need(world, "s3:GetObject", bucket, "backfill/listing/manifest.json", f"{why}: ItemReader")
        yield from bucket_key(bucket, "kms:Decrypt", world, "the ItemReader's object is SSE-KMS")
    elif reader:
        raise UnknownWiringError(f"{state_name} reads items with {reader.get('Resource')}: add its rule to "
                                 "tests/stacks/contracts/service_side.py _distributed_map")
    if state.get("ResultWriter"):
        raise UnknownWiringError(f"{state_name} writes results: add the ResultWriter's rule to _distributed_map")


def _state_machines(world: World) -> Iterator[tuple[str, Requirement]]:
    for name, role_arn, definition in definitions(world.assembly):
        role = world.role_of_arn(role_arn)
        stack, logical = name.split("/", 1)
        props = world.assembly.resolve(stack, world.assembly.stacks[stack].resources[logical]["Properties"])
        for state_name, state in iter_states(definition):
            if state.get("Type") == "Task":
                for target, requirement in _task(world, state_name, state, definition):
                    yield target or role, requirement
            if (state.get("ItemProcessor") or {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                for requirement in _distributed_map(world, state_name, state, str(props["StateMachineName"])):
                    yield role, requirement
        why = f"{name}: "
        if (props.get("LoggingConfiguration") or {}).get("Destinations"):
            # Step Functions 'Logging using CloudWatch Logs': the role manages the log delivery (no resource form).
            for action in ("CreateLogDelivery", "GetLogDelivery", "UpdateLogDelivery", "DeleteLogDelivery",
                           "ListLogDeliveries", "PutResourcePolicy", "DescribeResourcePolicies", "DescribeLogGroups"):
                yield role, need(world, f"logs:{action}", why + "LoggingConfiguration")
        if (props.get("TracingConfiguration") or {}).get("Enabled"):
            # Step Functions 'AWS X-Ray and Step Functions': the role sends traces.
            for action in ("PutTraceSegments", "PutTelemetryRecords", "GetSamplingRules", "GetSamplingTargets"):
                yield role, need(world, f"xray:{action}", why + "TracingConfiguration")


# -- CodeBuild and CodePipeline ----------------------------------------------------------------------------------

def buildspec_calls(buildspec: dict[str, Any], environment: dict[str, str], world: World,
                    why: str) -> list[Requirement]:
    """The AWS calls of a buildspec's commands: ``aws ecr get-login-password`` (GetAuthorizationToken),
    ``docker build --build-arg BASE_IMAGE`` (a pull of each base image containers/resolve_base_images.py names),
    ``docker push`` (ECR User Guide 'Pushing an image': the layer upload actions) and ``aws ssm put-parameter``."""
    commands = "\n".join(c for phase in buildspec.get("phases", {}).values() for c in phase.get("commands", []))
    variables = {**buildspec.get("env", {}).get("variables", {}), **environment}
    out: list[Requirement] = []
    if "get-login-password" in commands:
        out.append(need(world, "ecr:GetAuthorizationToken", f"{why}: aws ecr get-login-password"))
    if "--build-arg \"BASE_IMAGE=" in commands:
        for image in _base_images(world.region):
            out += image_pull(world, image, f"{why}: docker build FROM {image}")[1:]
    if "docker push" in commands:
        for image in variables["IMAGES"].split():
            for action in ("BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart",
                           "CompleteLayerUpload", "PutImage"):
                out.append(need(world, f"ecr:{action}", f"{why}: docker push {image}",
                                RepositoryName=f"{variables['ECR_REPOSITORY_PREFIX']}/{image}"))
    if "aws ssm put-parameter" in commands:
        for image in variables["IMAGES"].split():
            out.append(need(world, "ssm:PutParameter", f"{why}: aws ssm put-parameter",
                            ParameterNameWithoutLeadingSlash=f"{variables['PARAMETER_PREFIX']}/{image}/uri".lstrip("/")))
    return out


@cache
def _base_images(region: str) -> tuple[str, ...]:
    """What containers/resolve_base_images.py (the buildspec's own step) names for ``region``."""
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "containers" / "resolve_base_images.py"),
                             "--region", region], capture_output=True, text=True, check=True)
    return tuple(line.split("=", 1)[1] for line in result.stdout.splitlines() if "=" in line)


def _codebuild(world: World) -> Iterator[tuple[str, Requirement]]:
    """CodeBuild runs a build with the project's service role (CodeBuild User Guide, 'Allow CodeBuild to interact
    with other AWS services': logs, the CodePipeline artifacts in S3 with their key; 'Use CodeBuild with Amazon
    VPC': the ENI calls), plus what the buildspec's own commands call."""
    outputs = _pipeline_outputs(world)
    for stack, logical, resource in iter_resources(world.assembly, "AWS::CodeBuild::Project"):
        props = world.assembly.resolve(stack, resource["Properties"])
        role = world.role_of_arn(props["ServiceRole"])
        why = f"CodeBuild runs {props.get('Name', logical)}"
        environment = {v["Name"]: v["Value"] for v in props["Environment"].get("EnvironmentVariables", [])}
        # A file name in the source (containers/buildspec.yml) or the buildspec inline (JSON, which YAML reads).
        source = props["Source"].get("BuildSpec", "")
        inline = source.lstrip().startswith(("{", "version"))
        buildspec = yaml.safe_load(source if inline else (PROJECT_ROOT / source).read_text())
        needs = buildspec_calls(buildspec, environment, world, why)
        group = props.get("LogsConfig", {}).get("CloudWatchLogs", {}).get("GroupName")
        if group:
            needs += log_writes(world, group, f"{props.get('Name', logical)}/build-1", f"{why}: LogsConfig",
                                create_group=False)
        if props.get("VpcConfig"):
            needs += vpc_interfaces(world, props["VpcConfig"], f"{why}: VpcConfig", permissions=False)
            needs += [need(world, f"ec2:{action}", f"{why}: VpcConfig") for action in
                      ("DescribeDhcpOptions", "DescribeSecurityGroups", "DescribeVpcs")]
            subnet = props["VpcConfig"]["Subnets"][0]
            needs.append(need(world, "ec2:CreateNetworkInterfacePermission", f"{why}: VpcConfig",
                              (("ec2:Subnet", world.arn("ec2", f"subnet/{subnet}")),
                               ("ec2:AuthorizedService", "codebuild.amazonaws.com")), NetworkInterfaceId=ENI))
        if props["Source"].get("Type") == "CODEPIPELINE":
            store_bucket, store_key = outputs["store"]
            needs += object_need(world, "s3:GetObject", store_bucket, "pipeline/Source/input.zip", f"{why}: input")
            needs.append(Requirement("kms:Decrypt", (store_key,), reason=f"{why}: the artifact store's key"))
            if outputs["writes"].get(props.get("Name", "")):
                needs += object_need(world, "s3:PutObject", store_bucket, "pipeline/Output/output.zip",
                                     f"{why}: output artifact")
                needs.append(Requirement("kms:GenerateDataKey", (store_key,), reason=f"{why}: the artifact key"))
        yield from ((role, n) for n in needs)


def _pipeline_outputs(world: World) -> dict[str, Any]:
    """The artifact store (bucket, key) and which CodeBuild projects write an output artifact."""
    out: dict[str, Any] = {"store": ("", ""), "writes": {}}
    for stack, _logical, resource in iter_resources(world.assembly, "AWS::CodePipeline::Pipeline"):
        props = world.assembly.resolve(stack, resource["Properties"])
        store = props["ArtifactStore"]
        out["store"] = (store["Location"], store.get("EncryptionKey", {}).get("Id", ""))
        for stage in props["Stages"]:
            for action in stage["Actions"]:
                if action["ActionTypeId"]["Provider"] == "CodeBuild":
                    out["writes"][action["Configuration"]["ProjectName"]] = bool(action.get("OutputArtifacts"))
    return out


def _codepipeline(world: World) -> Iterator[tuple[str, Requirement]]:
    """CodePipeline assumes each action's RoleArn with the pipeline role (CodePipeline User Guide, 'CodePipeline
    service role'); each action then acts with its role (the action reference pages: S3 source, CodeStar
    connections source, CodeBuild build)."""
    for stack, _logical, resource in iter_resources(world.assembly, "AWS::CodePipeline::Pipeline"):
        props = world.assembly.resolve(stack, resource["Properties"])
        pipeline_role = world.role_of_arn(props["RoleArn"])
        store = props["ArtifactStore"]
        store_key = store.get("EncryptionKey", {}).get("Id")
        for stage in props["Stages"]:
            for action in stage["Actions"]:
                role = world.role_of_arn(action.get("RoleArn", props["RoleArn"]))
                why = f"CodePipeline action {stage['Name']}/{action['Name']}"
                if role != pipeline_role:
                    yield pipeline_role, need(world, "sts:AssumeRole", why,
                                              RoleNameWithPath=action["RoleArn"].split(":role/", 1)[1])
                yield from ((role, n) for n in _action(world, action, store["Location"], store_key, why))


def _action(world: World, action: dict[str, Any], store: str, store_key: str | None, why: str) -> list[Requirement]:
    provider, config = action["ActionTypeId"]["Provider"], action.get("Configuration", {})
    out: list[Requirement] = []
    if provider == "S3":
        out += [need(world, f"s3:{a}", why, BucketName=config["S3Bucket"], ObjectName=config["S3ObjectKey"])
                for a in ("GetObject", "GetObjectVersion")]
        out.append(need(world, "s3:GetBucketVersioning", why, BucketName=config["S3Bucket"]))
        out += bucket_key(config["S3Bucket"], "kms:Decrypt", world, f"{why}: the source bucket is SSE-KMS")
    elif provider == "CodeStarSourceConnection":
        connection = config["ConnectionArn"]
        # The action's IAM prefix is the connection ARN's (Developer Tools console, 'codestar-connections was
        # renamed codeconnections': a policy must use the prefix of the resource it names).
        prefix = connection.split(":")[2]
        out.append(need(world, f"{prefix}:UseConnection", why, ConnectionId=connection.rsplit("/", 1)[-1]))
    elif provider == "CodeBuild":
        # StopBuild: CodePipeline stops the build when its execution is stopped or superseded.
        out += [need(world, f"codebuild:{a}", why, ProjectName=config["ProjectName"])
                for a in ("StartBuild", "BatchGetBuilds", "StopBuild")]
        return out
    else:
        raise UnknownWiringError(f"{why} uses provider {provider}: add its rule to service_side.py _action")
    if action.get("OutputArtifacts"):
        out += object_need(world, "s3:PutObject", store, "pipeline/Source/output.zip", f"{why}: output artifact")
        if store_key:
            out.append(Requirement("kms:GenerateDataKey", (store_key,), reason=f"{why}: the artifact store's key"))
    return out


TEMPLATE_RULES: tuple[Callable[[World], Iterator[tuple[str, Requirement]]], ...] = (
    _lambda_functions, _rule_targets, _models, _state_machines, _codebuild, _codepipeline, _flow_logs,
    _trail_logs, _custom_resources, _bucket_deployments,
)


def template_requirements(world: World) -> Needs:
    """Role key -> what services request with it, from the templates alone."""
    out: Needs = defaultdict(list)
    for rule in TEMPLATE_RULES:
        for role, requirement in rule(world):
            out[role].append(requirement)
    return dict(out)

