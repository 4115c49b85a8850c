"""The backfill workflow: Step Functions lists an archive and runs it through the async endpoint, backlog-bounded.

```
Prepare ─► List ◄──────────────┐      (backfill_list: 200 SearchImageSets pages a call, paced under the quota)
            │ throttled? ─► Wait ┤
            │ more pages? ──────┘
            ▼
          Submit: Distributed Map over manifest.json (ItemReader), batches of batchSize, maxConcurrency children,
            │     toleratedFailurePercentage; each child:  SubmitBatch ─► deferred? ─► WaitForBacklog ─► SubmitBatch
            ▼                                              (backfill_submit: its share of the room to backlogTarget)
          Done
```

The input is ``{"modelName", "modelVersion", "filter"?, "datastoreId"?}`` (``monai-platform backfill start``);
the execution name is the run ID that names its listing. Built inside the inference stack, which holds the endpoint,
the bucket and the data store it works on (stacks/inference/stack.py).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.backfill.runtime import backfill_list, backfill_submit
from stacks.backfill.runtime.backfill_items import BACKFILL_PREFIX, REQUEST_PREFIX
from stacks.backfill.runtime.backfill_metrics import NAMESPACE
from stacks.compliance import GRANT_POLICY_REASON, acknowledge, acknowledge_grant_policy
from stacks.components.function_shared.results_layout import RESULTS_PREFIX
from stacks.components.log_group import encrypted_log_group
from stacks.components.platform_function import acknowledge_function_role, platform_function
from stacks.config import BackfillConfig, PlatformConfig
from stacks.nag_wildcards import acknowledge_wildcards
from stacks.props import AsyncEndpoint, DicomStore, PlatformKeys

RUNTIME_DIR = str(Path(__file__).resolve().parent / "runtime")
LOG_RETENTION_DAYS = 365
# A backfill of a large archive runs for days; Standard workflows run up to a year.
RUN_TIMEOUT = Duration.days(30)
THROTTLED_WAIT = Duration.seconds(10)
WILDCARDS_REASON = (
    "Wildcards come from grants scoped to one prefix of the inference bucket (backfill/, input/, results-index/), "
    "KMS actions such as kms:GenerateDataKey* on the data key, the executions of this state machine's own "
    "Distributed Map, and cloudwatch:GetMetricData (which has no resource type), the backfill's namespace "
    "condition on PutMetricData."
)


class BackfillWorkflow(Construct):
    """``list_function``, ``submit_function`` and ``state_machine`` (public: the CLI starts it by its ARN)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        dead_letter_queue: sqs.IQueue,
        bucket: s3.IBucket,
        dicom_store: DicomStore,
        endpoint: AsyncEndpoint,
    ) -> None:
        super().__init__(scope, id_)
        settings = config.backfill

        def function(name: str, handler: str, description: str, environment: dict[str, str]) -> lambda_.Function:
            return platform_function(
                self, name, runtime_dir=RUNTIME_DIR, handler=handler, description=description,
                environment=environment, environment_key=keys.data_key, logs_key=keys.logs_key,
                timeout=Duration.minutes(5), memory_size=1024, reserved_concurrency=settings.max_concurrency + 1,
                vpc=vpc, subnets=subnets, security_group=security_group, dead_letter_queue=None,
                synchronous_reason="Step Functions invokes it synchronously (lambda:invoke) and retries it; a "
                "failed run stays in the execution history, so no asynchronous invocation can fail into a queue",
            )  # fmt: skip

        common = {
            backfill_list.ENV_DATASTORE_ID: dicom_store.datastore_id,
            backfill_list.ENV_INFERENCE_BUCKET: bucket.bucket_name,
            backfill_list.ENV_ENDPOINT_NAME: endpoint.name,
        }
        self.list_function = function(
            "BackfillList", "backfill_list.handler",
            "Lists the archive's image sets for a backfill (SearchImageSets, paced) and writes what remains to do",
            common,
        )  # fmt: skip
        self.submit_function = function(
            "BackfillSubmit", "backfill_submit.handler",
            "Submits a backfill batch to the async endpoint as its backlog allows",
            {
                **common,
                backfill_submit.ENV_BACKLOG_TARGET: str(settings.backlog_target),
                backfill_submit.ENV_WORKERS: str(settings.max_concurrency),
            },
        )  # fmt: skip
        self._grant(bucket=bucket, keys=keys, dicom_store=dicom_store, endpoint=endpoint)
        for fn in (self.list_function, self.submit_function):
            acknowledge_function_role(fn, WILDCARDS_REASON)

        definition = self._definition(settings.backlog_wait_seconds, bucket, settings)
        self.log_group = encrypted_log_group(self, "Logs", key=keys.logs_key, retention_days=LOG_RETENTION_DAYS)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{config.prefix}-backfill",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=RUN_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        keys.data_key.grant(self.state_machine, "kms:Decrypt")  # the ItemReader reads the SSE-KMS manifest
        acknowledge_grant_policy(self.state_machine.role)
        acknowledge_wildcards(self.state_machine.role.node.find_child("DefaultPolicy"), WILDCARDS_REASON)
        # CDK gives the Distributed Map's own statements (StartExecution on this state machine, Describe/Stop on its
        # executions) a policy of their own on the same role.
        map_policy = self.state_machine.node.find_child("DistributedMapPolicy")
        acknowledge(map_policy, ["HIPAA.Security-IAMNoInlinePolicy"], GRANT_POLICY_REASON)
        acknowledge_wildcards(map_policy, WILDCARDS_REASON)

    def _grant(self, *, bucket: s3.IBucket, keys: PlatformKeys, dicom_store: DicomStore,
               endpoint: AsyncEndpoint) -> None:
        stack = Stack.of(self)
        listing, submitting = self.list_function, self.submit_function
        listing.add_to_role_policy(iam.PolicyStatement(
            actions=["medical-imaging:SearchImageSets"], resources=[dicom_store.datastore_arn]))
        # The listing reads what is done (results index, claims, failures) and writes its parts and manifest.
        listing.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{RESULTS_PREFIX}*", f"{BACKFILL_PREFIX}*"]}}))
        listing.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject"], resources=[bucket.arn_for_objects(f"{BACKFILL_PREFIX}*")]))
        # A batch claims (and reads a claim it finds, to take over a stale one), records failures and releases claims
        # under backfill/, and writes requests under input/.
        submitting.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[bucket.arn_for_objects(f"{BACKFILL_PREFIX}*")]))
        submitting.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{REQUEST_PREFIX}*")]))
        submitting.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:InvokeEndpointAsync"],
            resources=[stack.format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint.name)]))
        # GetMetricData has no resource type (Service Authorization Reference): "*" is the only form.
        submitting.add_to_role_policy(iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]))
        # Both read and write SSE-KMS objects (a batch reads the claims it finds).
        for fn in (listing, submitting):
            keys.data_key.grant(fn, "kms:Decrypt", "kms:GenerateDataKey")
            fn.add_to_role_policy(iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"], resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}}))

    def _definition(self, wait_seconds: int, bucket: s3.IBucket, cfg: BackfillConfig) -> sfn.IChainable:
        listing = tasks.LambdaInvoke(
            self, "List", lambda_function=self.list_function,
            payload=sfn.TaskInput.from_object({
                "runId.$": "$$.Execution.Name",
                "modelName.$": "$.run.modelName",
                "modelVersion.$": "$.run.modelVersion",
                "filter.$": "$.run.filter",
                "listing.$": "$.listing",
            }),
            result_selector={"listing.$": "$.Payload"}, result_path="$.listed", retry_on_service_exceptions=True,
        )  # fmt: skip
        keep = sfn.Pass(self, "KeepListing", parameters={"run.$": "$.run", "listing.$": "$.listed.listing"})
        prepare = sfn.Pass(
            self, "Prepare",
            parameters={
                "run": {"modelName.$": "$.modelName", "modelVersion.$": "$.modelVersion", "filter.$": "$.filter"},
                "listing": {"part": 0},
            },
        )  # fmt: skip
        throttled = sfn.Wait(self, "WaitWhileThrottled", time=sfn.WaitTime.duration(THROTTLED_WAIT))
        submit = tasks.LambdaInvoke(
            self, "SubmitBatch", lambda_function=self.submit_function,
            payload_response_only=True,  # the batch's Items and BatchInput in, the deferred Items out
            retry_on_service_exceptions=True,
        )  # fmt: skip
        wait = sfn.Wait(self, "WaitForBacklog", time=sfn.WaitTime.duration(Duration.seconds(wait_seconds)))
        batch_done = sfn.Succeed(self, "BatchDone")
        child = submit.next(
            sfn.Choice(self, "Deferred")
            .when(sfn.Condition.is_present("$.Items[0]"), wait.next(submit))
            .otherwise(batch_done)
        )
        run_map = sfn.DistributedMap(
            self, "Submit",
            item_reader=sfn.S3JsonItemReader(bucket=bucket, key=sfn.JsonPath.string_at("$.listing.manifestKey")),
            item_batcher=sfn.ItemBatcher(max_items_per_batch=cfg.batch_size,
                                         batch_input={"run.$": "$.run"}),
            max_concurrency=cfg.max_concurrency,
            tolerated_failure_percentage=cfg.tolerated_failure_percentage,
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_path=sfn.JsonPath.DISCARD,
        )  # fmt: skip
        run_map.item_processor(child)
        done = sfn.Succeed(self, "Done")
        listed = (
            sfn.Choice(self, "Listed")
            .when(sfn.Condition.boolean_equals("$.listing.throttled", True), throttled.next(listing))
            .when(sfn.Condition.is_not_null("$.listing.manifestKey"), run_map.next(done))
            .otherwise(listing)
        )
        return prepare.next(listing).next(keep).next(listed)
