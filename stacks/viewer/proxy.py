"""The viewer's way into the data store: an HTTP API whose JWT authorizer accepts only the viewer's Cognito access
tokens with the ``dicomweb/read`` scope, in front of a function that signs each read with SigV4.

Why a proxy and not HealthImaging's own OIDC: a data store checks bearer tokens only through a Lambda authorizer
named when the data store is created (CreateDatastore's ``lambdaAuthorizerArn``), and CloudFormation's
``AWS::HealthImaging::Datastore`` has no such property; replacing the platform's data store with a custom resource
would mean a new, empty data store and migrating every study. The function's role may call the DICOMweb read
actions on the one data store, nothing else (docs/viewer.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsii
from aws_cdk import Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.components.log_group import encrypted_log_group
from stacks.components.platform_function import (
    FUNCTION_LOG_RETENTION_DAYS,
    acknowledge_function_role,
    platform_function,
)
from stacks.components.security_group import https_egress_security_group
from stacks.props import DicomStore, PlatformKeys, WorkloadNetwork
from stacks.viewer.ohif_site import DICOMWEB_PATH
from stacks.viewer.runtime import dicomweb_proxy

RUNTIME_DIR = str(Path(__file__).resolve().parent / "runtime")

# Every read HealthImaging's DICOMweb API offers (QIDO-RS searches, WADO-RS retrieval); all take the data store as
# their resource (Service Authorization Reference, AWS HealthImaging). No write action: the viewer cannot store.
DICOMWEB_READ_ACTIONS = (
    "medical-imaging:SearchDICOMStudies",
    "medical-imaging:SearchDICOMSeries",
    "medical-imaging:SearchDICOMInstances",
    "medical-imaging:GetDICOMSeriesMetadata",
    "medical-imaging:GetDICOMInstance",
    "medical-imaging:GetDICOMInstanceMetadata",
    "medical-imaging:GetDICOMInstanceFrames",
    "medical-imaging:GetDICOMBulkdata",
)
# HealthImaging's DICOMweb GETs are throttled at 50 requests/s (burst 100) per account and region: the API stops
# a viewer's burst there, rather than the function passing the service's 429s on.
THROTTLE_RATE = 50
THROTTLE_BURST = 100
# Each request waits on one HealthImaging call (~0.1-0.3 s): 20 concurrent functions carry the throttle rate.
RESERVED_CONCURRENCY = 20
TIMEOUT = Duration.seconds(29)  # API Gateway waits 30 s for an integration
# The function holds a whole answer (up to Lambda's 6 MB) and its base64 copy.
MEMORY_MB = 512

SYNCHRONOUS_REASON = (
    "API Gateway invokes this proxy synchronously for each viewer request and returns its error to the viewer; "
    "a dead-letter queue only receives failed asynchronous invocations, so it would never hold anything."
)
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "route": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "user": "$context.authorizer.claims.sub",
    "authorizerError": "$context.authorizer.error",
    "integrationError": "$context.integrationErrorMessage",
    "latencyMs": "$context.responseLatency",
    "bytes": "$context.responseLength",
}


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogs:
    """The stage's access log: one JSON line per request in ``log_group``."""

    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigw.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")))


class DicomWebProxy(Construct):
    """``function``, ``api`` and ``origin_domain_name`` (the API's host, CloudFront's origin) are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        dicom_store: DicomStore,
        issuer: str,
        client_id: str,
        scope_name: str,
    ) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        # Runs in the workload subnets: HealthImaging's DICOMweb host answers through the VPC endpoint's private DNS.
        self.security_group = https_egress_security_group(
            self, "SecurityGroup", vpc=network.vpc,
            description="Viewer DICOMweb proxy - HTTPS out to the HealthImaging DICOMweb endpoint only",
        )
        self.function = platform_function(
            self,
            "Function",
            runtime_dir=RUNTIME_DIR,
            handler="dicomweb_proxy.handler",
            description="Signs the viewer's DICOMweb reads of the platform's data store (SigV4)",
            environment={
                dicomweb_proxy.ENV_DATASTORE_ID: dicom_store.datastore_id,
                dicomweb_proxy.ENV_DICOMWEB_ENDPOINT: f"https://dicom-medical-imaging.{stack.region}.{stack.url_suffix}",
                dicomweb_proxy.ENV_SIGNING_REGION: stack.region,
            },
            environment_key=keys.data_key,
            logs_key=keys.logs_key,
            timeout=TIMEOUT,
            memory_size=MEMORY_MB,
            reserved_concurrency=RESERVED_CONCURRENCY,
            vpc=network.vpc,
            subnets=network.subnets,
            security_group=self.security_group,
            dead_letter_queue=None,
            synchronous_reason=SYNCHRONOUS_REASON,
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=list(DICOMWEB_READ_ACTIONS), resources=[dicom_store.datastore_arn])
        )

        self.api = apigw.HttpApi(
            self,
            "Api",
            description="The viewer's DICOMweb reads (CloudFront /dicom-web/*): Cognito access tokens only",
            create_default_stage=False,
        )
        access_logs = encrypted_log_group(self, "AccessLogs", key=keys.logs_key,
                                          retention_days=FUNCTION_LOG_RETENTION_DAYS)
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
            access_log_settings=_AccessLogs(access_logs),
        )
        authorizer = authorizers.HttpJwtAuthorizer(
            "CognitoAccessTokens",
            issuer,
            # Cognito access tokens carry the app client in client_id (no aud): API Gateway checks it against this.
            jwt_audience=[client_id],
            identity_source=["$request.header.Authorization"],
        )
        self.api.add_routes(
            path=f"{DICOMWEB_PATH}/{{proxy+}}",
            methods=[apigw.HttpMethod.GET],
            integration=integrations.HttpLambdaIntegration(
                "Proxy", self.function, payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0
            ),
            authorizer=authorizer,
            authorization_scopes=[scope_name],
        )
        # https://<api-id>.execute-api.<region>.amazonaws.com -> the host CloudFront connects to.
        self.origin_domain_name = Fn.select(2, Fn.split("/", self.api.api_endpoint))
        acknowledge_function_role(
            self.function, "The proxy's own statement names the one data store; the only wildcards are CDK's."
        )
