"""Inference stack: image sets -> the async endpoint, SEGs back into HealthImaging when on, failures queued."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.inference.runtime import import_seg, request_inference
from stacks.inference.stack import SEG_IMPORT_PREFIX, InferenceStack, results_topic_name
from tests.stacks.assembly import INFERENCE_OVERRIDES, VIEWER_DOMAIN, VIEWER_OVERRIDES, Assembly, as_list, output_name
from tests.stacks.scaffold import Scaffold, alone

STACK = "Inference"


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        InferenceStack,
        STACK,
        keys=scaffold.keys,
        network=scaffold.network,
        inference_bucket=scaffold.buckets["Inference"],
        inbox_bucket=scaffold.buckets["DicomInbox"],
        import_output_bucket=scaffold.buckets["ImportOutput"],
        dicom_store=scaffold.dicom_store,
        endpoint=scaffold.endpoint,
    )


assembly = alone(build)
import_assembly = alone(build, INFERENCE_OVERRIDES)  # serving.importSegBack on
viewer_import_assembly = alone(build, {**INFERENCE_OVERRIDES, **VIEWER_OVERRIDES})  # ... and the viewer
# serving.importSegBack on, notificationEmails left empty (cdk.json's default).
quiet_import_assembly = alone(build, {"platform.serving.importSegBack": "true"})


def test_the_write_back_names_the_viewer_only_when_the_viewer_is_on(
    import_assembly: Assembly, viewer_import_assembly: Assembly
) -> None:
    def env(assembly: Assembly) -> dict[str, Any]:
        return dict(assembly.one(STACK, "AWS::Lambda::Function", "ImportSeg")["Properties"]["Environment"]["Variables"])

    assert env(viewer_import_assembly)[import_seg.ENV_VIEWER_URL] == f"https://{VIEWER_DOMAIN}"
    assert import_seg.ENV_VIEWER_URL not in env(import_assembly)


def statements(assembly: Assembly, role_prefix: str) -> list[dict[str, Any]]:
    policy = assembly.one(STACK, "AWS::IAM::Policy", f"{role_prefix}ServiceRoleDefaultPolicy")["Properties"]
    return list(policy["PolicyDocument"]["Statement"])


def actions(statement: dict[str, Any]) -> list[str]:
    return as_list(statement["Action"])


def test_the_rule_sends_image_sets_created_in_our_data_store_to_the_request_function(assembly: Assembly) -> None:
    rule = assembly.one(STACK, "AWS::Events::Rule", "ImageSetCreatedRule")["Properties"]
    pattern = rule["EventPattern"]
    assert (pattern["source"], pattern["detail-type"]) == (["aws.medical-imaging"], ["Image Set Created"])
    (datastore,) = pattern["detail"]["datastoreId"]
    assert "DatastoreDatastoreId" in output_name(datastore)  # filtered to the data store it was given
    (target,) = rule["Targets"]
    assert target["Arn"]["Fn::GetAtt"][0].startswith("RequestInference")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("DeadLetterQueue")
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 4}


def test_the_request_function_is_configured_for_the_endpoint_and_the_input_prefix(assembly: Assembly) -> None:
    function = assembly.one(STACK, "AWS::Lambda::Function", "RequestInference")["Properties"]
    env = function["Environment"]["Variables"]
    assert env[request_inference.ENV_ENDPOINT_NAME] == "monai-imaging-dev-spleen-async"
    assert env[request_inference.ENV_INPUT_PREFIX] == "input/"
    assert "InferenceBucket" in output_name(env[request_inference.ENV_BUCKET])
    assert "DatastoreDatastoreId" in output_name(env[request_inference.ENV_DATASTORE_ID])
    assert function["Handler"] == "request_inference.handler"


@pytest.mark.parametrize("prefix", ["RequestInference", "ImportSeg"])
def test_functions_are_hardened_like_the_ingestion_functions(import_assembly: Assembly, prefix: str) -> None:
    function = import_assembly.one(STACK, "AWS::Lambda::Function", prefix)["Properties"]
    assert function["Runtime"] == "python3.13"
    assert function["ReservedConcurrentExecutions"] == 5
    assert function["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0].startswith("DeadLetterQueue")
    assert "KeysDataKey" in output_name(function["KmsKeyArn"])
    assert len(function["VpcConfig"]["SubnetIds"]) == 2
    log_group = import_assembly.one(STACK, "AWS::Logs::LogGroup", f"{prefix}Logs")["Properties"]
    assert "KmsKeyId" in log_group
    assert log_group["RetentionInDays"] == 365


def test_the_request_function_invokes_only_the_async_endpoint(assembly: Assembly) -> None:
    (invoke,) = [s for s in statements(assembly, "RequestInference") if "sagemaker:InvokeEndpointAsync" in actions(s)]
    assert actions(invoke) == ["sagemaker:InvokeEndpointAsync"]
    assert json.dumps(invoke["Resource"]).endswith(':endpoint/monai-imaging-dev-spleen-async"]]}')
    # Must not: any other SageMaker action (creating or updating endpoints) or a wildcard endpoint.
    sagemaker = [a for s in statements(assembly, "RequestInference") for a in actions(s) if a.startswith("sagemaker:")]
    assert sagemaker == ["sagemaker:InvokeEndpointAsync"]


def test_the_request_function_writes_only_under_input(assembly: Assembly) -> None:
    s3 = [s for s in statements(assembly, "RequestInference") if any(a.startswith("s3:") for a in actions(s))]
    (statement,) = s3
    assert sorted(actions(statement)) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    (resource,) = as_list(statement["Resource"])
    assert resource["Fn::Join"][1][1] == "/input/*"  # must not: output/ (the endpoint's) or the whole bucket


def test_the_request_function_reads_image_set_metadata_of_our_data_store_only(assembly: Assembly) -> None:
    (read,) = [s for s in statements(assembly, "RequestInference")
               if any(a.startswith("medical-imaging:") for a in actions(s))]
    assert actions(read) == ["medical-imaging:GetImageSetMetadata"]
    datastore, image_sets = read["Resource"]
    assert "DatastoreDatastoreArn" in output_name(datastore)
    assert image_sets["Fn::Join"][1][1] == "/imageset/*"


@pytest.mark.parametrize(
    ("fixture", "imports"),
    [
        ("assembly", False),  # default: SEGs stay in the inference bucket
        ("import_assembly", True),  # serving.importSegBack: true
    ],
)
def test_the_import_function_exists_and_is_subscribed_only_when_import_is_on(
    request: pytest.FixtureRequest, fixture: str, imports: bool
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    functions = assembly.resources(STACK, "AWS::Lambda::Function")
    assert len([k for k in functions if k.startswith("ImportSeg")]) == int(imports)
    lambda_subscriptions = [
        s for s in assembly.resources(STACK, "AWS::SNS::Subscription").values() if s["Properties"]["Protocol"] == "lambda"
    ]
    # The results index's function is on the success topic either way (test_the_index_function_...).
    assert len(lambda_subscriptions) == 1 + int(imports)
    lambda_subscriptions = [s for s in lambda_subscriptions
                            if s["Properties"]["Endpoint"]["Fn::GetAtt"][0].startswith("ImportSeg")]
    assert len(lambda_subscriptions) == int(imports)
    if imports:
        (subscription,) = lambda_subscriptions
        assert "InferenceSucceeded" in output_name(subscription["Properties"]["TopicArn"])
        redrive = subscription["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]
        assert redrive["Fn::GetAtt"][0].startswith("DeadLetterQueue")


def test_the_import_function_is_configured_for_the_inbox_seg_prefix(import_assembly: Assembly) -> None:
    env = import_assembly.one(STACK, "AWS::Lambda::Function", "ImportSeg")["Properties"]["Environment"]["Variables"]
    assert env[import_seg.ENV_SEG_PREFIX] == SEG_IMPORT_PREFIX == "incoming/inference-seg/"
    assert "DicomInbox" in output_name(env[import_seg.ENV_INBOX_BUCKET])
    assert "ImportOutput" in output_name(env[import_seg.ENV_IMPORT_OUTPUT_BUCKET])
    assert "ImportRole" in output_name(env[import_seg.ENV_IMPORT_ROLE_ARN])
    # STOW-RS through HealthImaging's DICOMweb host (the network stack's dicom-medical-imaging endpoint).
    assert env[import_seg.ENV_RESULT_PREFIX] == "output/results/"
    region = env[import_seg.ENV_SIGNING_REGION]
    assert region == "us-east-1"  # the stage's region (cdk.json)
    assert env[import_seg.ENV_DICOMWEB_ENDPOINT] in (
        f"https://dicom-medical-imaging.{region}.amazonaws.com",
        {"Fn::Join": ["", [f"https://dicom-medical-imaging.{region}.", {"Ref": "AWS::URLSuffix"}]]},
    )


def test_the_import_function_reads_outputs_writes_the_seg_prefix_and_passes_only_the_import_role(
    import_assembly: Assembly,
) -> None:
    policy = statements(import_assembly, "ImportSeg")
    puts = {r["Fn::Join"][1][1]: r["Fn::Join"][1][0]
            for s in policy if "s3:PutObject" in actions(s) for r in as_list(s["Resource"])}
    assert set(puts) == {"/incoming/inference-seg/*", "/output/results/*"}  # the import path, the result JSON
    assert "DicomInbox" in output_name(puts["/incoming/inference-seg/*"])
    assert "Inference" in output_name(puts["/output/results/*"])
    (store,) = [s for s in policy if "medical-imaging:StoreDICOM" in actions(s)]
    # CDK merges statements on the same resource: the import job's start may share it, nothing else.
    assert {"medical-imaging:StoreDICOM", "medical-imaging:GetDICOMInstanceMetadata"} <= set(actions(store)) <= {
        "medical-imaging:StoreDICOM", "medical-imaging:GetDICOMInstanceMetadata", "medical-imaging:StartDICOMImportJob"}
    assert "DatastoreDatastoreArn" in output_name(store["Resource"])
    (read,) = [s for s in policy if "s3:GetObject*" in actions(s)]
    assert [r["Fn::Join"][1][1] for r in as_list(read["Resource"]) if "Fn::Join" in r] == ["/output/*"]
    (start,) = [s for s in policy if "medical-imaging:StartDICOMImportJob" in actions(s)]
    assert "DatastoreDatastoreArn" in output_name(start["Resource"])
    (pass_role,) = [s for s in policy if "iam:PassRole" in actions(s)]
    assert "ImportRole" in output_name(pass_role["Resource"])
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "medical-imaging.amazonaws.com"}}
    # Must not: the request function gets none of these.
    request_actions = {a for s in statements(import_assembly, "RequestInference") for a in actions(s)}
    assert not request_actions & {"iam:PassRole", "medical-imaging:StartDICOMImportJob", "medical-imaging:StoreDICOM"}


def test_endpoint_failures_are_kept_in_an_encrypted_failure_queue(assembly: Assembly) -> None:
    (subscription,) = [
        s["Properties"] for s in assembly.resources(STACK, "AWS::SNS::Subscription").values()
        if s["Properties"]["Protocol"] == "sqs"
    ]
    assert "InferenceFailed" in output_name(subscription["TopicArn"])
    assert subscription["Endpoint"]["Fn::GetAtt"][0].startswith("FailureQueue")
    assert subscription["RawMessageDelivery"] is True  # the queue holds SageMaker's JSON, not an SNS envelope
    for prefix in ("FailureQueue", "DeadLetterQueue"):
        queue = assembly.one(STACK, "AWS::SQS::Queue", prefix)["Properties"]
        assert queue["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("QueueKey")
        assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600


@pytest.mark.parametrize(
    ("fixture", "sns_sources"),
    [
        # The failure queue's subscription, and the success topic's Lambda subscriptions' redrive (the results
        # index's always, the import's when on: one statement for the topic).
        ("assembly", ["InferenceFailed", "InferenceSucceeded"]),
        ("import_assembly", ["InferenceFailed", "InferenceSucceeded"]),
    ],
)
def test_services_use_the_queue_key_only_for_their_own_sources(
    request: pytest.FixtureRequest, fixture: str, sns_sources: list[str]
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    key = assembly.one(STACK, "AWS::KMS::Key", "QueueKey")["Properties"]
    assert key["EnableKeyRotation"] is True
    by_service: dict[str, list[dict[str, Any]]] = {}
    for statement in key["KeyPolicy"]["Statement"]:
        service = statement["Principal"].get("Service")
        if service:
            by_service.setdefault(service, []).append(statement)
    assert set(by_service) == {"events.amazonaws.com", "sns.amazonaws.com"}
    (events_statement,) = by_service["events.amazonaws.com"]
    assert events_statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    sources = sorted(
        output_name(s["Condition"]["ArnEquals"]["aws:SourceArn"]) for s in by_service["sns.amazonaws.com"]
    )
    assert [next(t for t in sns_sources if t in name) for name in sources] == sns_sources


def test_no_inference_role_trusts_anything_but_lambda_or_holds_a_managed_full_access_policy(
    import_assembly: Assembly,
) -> None:
    roles = import_assembly.resources(STACK, "AWS::IAM::Role")
    assert len(roles) == 6  # request, import, index, the backfill's list and submit, the backfill state machine
    for logical_id, role in roles.items():
        principals = [s["Principal"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
        # Only the backfill's state machine is assumed by Step Functions; every other role is a function's.
        service = "states.amazonaws.com" if logical_id.startswith("BackfillStateMachineRole") else "lambda.amazonaws.com"
        assert principals == [{"Service": service}], logical_id
        assert "FullAccess" not in json.dumps(role["Properties"].get("ManagedPolicyArns", [])), logical_id


def test_a_timed_out_claim_is_stale_by_the_time_lambda_retries() -> None:
    # Lambda retries a failed asynchronous invocation after about a minute: by then (timeout + one minute)
    # the dead invocation's claim must count as stale, or the retry refuses and the event goes to the DLQ.
    from stacks.inference.stack import FUNCTION_TIMEOUT

    assert FUNCTION_TIMEOUT.to_seconds() < request_inference.STALE_CLAIM_SECONDS < FUNCTION_TIMEOUT.to_seconds() + 60


def test_the_index_function_reads_seg_outputs_and_writes_the_results_index_only(assembly: Assembly) -> None:
    (subscription,) = [s["Properties"] for s in assembly.resources(STACK, "AWS::SNS::Subscription").values()
                       if s["Properties"]["Protocol"] == "lambda"]
    assert subscription["Endpoint"]["Fn::GetAtt"][0].startswith("IndexResult")
    assert "InferenceSucceeded" in output_name(subscription["TopicArn"])
    s3_statements = [s for s in statements(assembly, "IndexResult")
                     if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    objects: dict[str, set[str]] = {}
    for statement in s3_statements:
        for resource in as_list(statement["Resource"]):
            text = json.dumps(resource)
            where = "read" if "output/*" in text else "write" if "results-index/*" in text else "other"
            objects.setdefault(where, set()).update(as_list(statement["Action"]))
    assert "s3:GetObject*" in objects["read"]
    assert "s3:PutObject" in objects["write"]
    assert not any(a.startswith(("s3:Delete", "s3:GetObject")) for a in objects["write"])
    assert set(objects) - {"read", "write", "other"} == set()
    assert not any(a.startswith("s3:Put") for a in objects.get("other", ()))


def results_topics(assembly: Assembly) -> dict[str, dict[str, Any]]:
    return assembly.resources(STACK, "AWS::SNS::Topic")


@pytest.mark.parametrize(
    ("fixture", "topics"),
    [
        ("assembly", 0),  # no write-back: nothing would publish, so no topic
        ("import_assembly", 1),
    ],
)
def test_the_results_topic_exists_only_with_the_write_back(
    request: pytest.FixtureRequest, fixture: str, topics: int
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    assert len(results_topics(assembly)) == topics
    assert ("ResultsTopicArn" in assembly.templates[STACK].get("Outputs", {})) == bool(topics)


def test_the_results_topic_is_encrypted_with_the_data_key_and_tls_only(import_assembly: Assembly) -> None:
    ((logical_id, topic),) = results_topics(import_assembly).items()
    assert topic["Properties"]["TopicName"] == results_topic_name("monai-imaging-dev") == "monai-imaging-dev-results"
    assert "KeysDataKey" in output_name(topic["Properties"]["KmsMasterKeyId"])
    (policy,) = [p["Properties"] for p in import_assembly.resources(STACK, "AWS::SNS::TopicPolicy").values()
                 if {"Ref": logical_id} in p["Properties"]["Topics"]]
    (deny,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert actions(deny) == ["sns:Publish"]
    output = import_assembly.templates[STACK]["Outputs"]["ResultsTopicArn"]
    assert output["Value"] == {"Ref": logical_id}


@pytest.mark.parametrize(
    ("fixture", "emails"),
    [
        ("quiet_import_assembly", []),  # notificationEmails empty: no subscription to confirm
        ("import_assembly", ["imaging-ops@example.org"]),
    ],
)
def test_notification_emails_subscribe_to_the_results_topic(
    request: pytest.FixtureRequest, fixture: str, emails: list[str]
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    (logical_id,) = results_topics(assembly)
    subscriptions = [s["Properties"] for s in assembly.resources(STACK, "AWS::SNS::Subscription").values()
                     if s["Properties"]["Protocol"] == "email"]
    assert [s["Endpoint"] for s in subscriptions] == emails
    assert all(s["TopicArn"] == {"Ref": logical_id} for s in subscriptions)


def test_only_the_import_function_publishes_and_only_to_the_results_topic(import_assembly: Assembly) -> None:
    (logical_id,) = results_topics(import_assembly)
    env = import_assembly.one(STACK, "AWS::Lambda::Function", "ImportSeg")["Properties"]["Environment"]["Variables"]
    assert env[import_seg.ENV_RESULTS_TOPIC_ARN] == {"Ref": logical_id}
    (publish,) = [s for s in statements(import_assembly, "ImportSeg") if "sns:Publish" in actions(s)]
    assert actions(publish) == ["sns:Publish"]
    assert publish["Resource"] == {"Ref": logical_id}  # must not: the serving stack's topics, or any topic
    # Its messages are encrypted with the topic's key: the role may use that key (and no other for SNS).
    kms = [s for s in statements(import_assembly, "ImportSeg")
           if {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(actions(s))]
    assert any("KeysDataKey" in json.dumps(r) for s in kms for r in as_list(s["Resource"]))
    # Must not: any other role of the stack publishing anywhere.
    policies = import_assembly.resources(STACK, "AWS::IAM::Policy")
    publishers = [logical for logical, policy in policies.items()
                  if any("sns:Publish" in as_list(s["Action"]) for s in policy["Properties"]["PolicyDocument"]["Statement"])]
    assert len(publishers) == 1
    assert publishers[0].startswith("ImportSegServiceRoleDefaultPolicy")
