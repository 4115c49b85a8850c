"""The viewer's one origin: CloudFront over a private bucket holding OHIF's dist/ and the generated app-config.js,
with ``/dicom-web/*`` routed to the DICOMweb proxy's API.

One origin keeps the browser's calls same-origin (no CORS, ``connect-src 'self'``). CloudFront reads the bucket
with origin access control; viewers get TLS 1.2+ on your host name and certificate, the security headers
(stacks.viewer.ohif_site.security_headers) on every answer, and standard access logs in the access-logs bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from stacks.compliance import acknowledge, acknowledge_grant_policy, skip_checkov
from stacks.components.log_group import encrypted_log_group
from stacks.components.platform_function import FUNCTION_LOG_RETENTION_DAYS
from stacks.nag_wildcards import acknowledge_wildcards
from stacks.viewer.ohif_site import (
    DICOMWEB_PATH,
    EXCLUDED,
    SPA_ROUTES_FUNCTION,
    content_security_policy,
    require_dist,
)

ACCESS_LOG_PREFIX = "viewer-cloudfront/"
SITE_ACCESS_LOG_PREFIX = "viewer-site/"
# dist/ less EXCLUDED is ~48 MB: the deployment function unzips it in memory and /tmp.
DEPLOYMENT_MEMORY_MB = 1024
HSTS_MAX_AGE = Duration.days(730)

SITE_ENCRYPTION_REASON = (
    "This bucket holds the viewer's application code (OHIF's dist/ from npm) and its configuration (pool, client "
    "and data store IDs), no patient data; S3-managed keys let CloudFront's origin access control read it without "
    "a key policy that names this distribution."
)
SITE_REPLICATION_REASON = (
    "Every deployment rewrites this bucket from the pinned npm package and the generated configuration; a replica "
    "in a second region would copy published application code, not data that could be lost."
)
ORIGIN_FAILOVER_REASON = (
    "Both origins are regional services of the stage's region (the site bucket, the DICOMweb API in front of the "
    "data store); a second origin would need a second data store, which is a disaster-recovery design of its own."
)
NO_WEB_ACL_REASON = (
    "No web ACL is configured (platform.viewer.webAclArn): every DICOMweb read needs a Cognito access token that "
    "API Gateway verifies and is throttled there; set webAclArn to a CLOUDFRONT-scope web ACL to add AWS WAF."
)
NO_GEO_RESTRICTION_REASON = (
    "No country list is configured (platform.viewer.allowedCountries): users sign in with a password and a TOTP "
    "second factor wherever they read studies; set allowedCountries to answer only those countries."
)
DEPLOYMENT_IAM4_REASON = (
    "CDK's BucketDeployment function runs only while CloudFormation deploys this stack; the AWS-managed basic "
    "execution role gives it its log stream and nothing else."
)
DEPLOYMENT_IAM5_REASON = (
    "CDK's BucketDeployment grants: read the site's asset zip in the bootstrap assets bucket and replace the "
    "objects of the one site bucket (object ARNs end in /*); the action families are CDK's grant_read_write."
)
DEPLOYMENT_ENVIRONMENT_REASON = (
    "The deployment function's only environment variable is CDK's AWS_CA_BUNDLE, the path of the CA bundle in "
    "the runtime; there is no secret or identifier to encrypt."
)
DEPLOYMENT_RUNTIME_REASON = (
    "The runtime of CDK's BucketDeployment function is chosen by aws-cdk-lib (pinned in requirements.txt); it "
    "moves with the library version, not with this project's Lambda runtime."
)
DEPLOYMENT_DLQ_REASON = (
    "CloudFormation waits for this deployment function's answer and fails the stack update when it does not come; "
    "a failed invocation has nothing a dead-letter queue could let anyone replay."
)
DEPLOYMENT_CONCURRENCY_REASON = (
    "CloudFormation invokes this deployment function once per deployment of the stack; there is no traffic whose "
    "concurrency a reserved limit would bound."
)
DEPLOYMENT_VPC_REASON = (
    "The deployment function copies OHIF's application files from the assets bucket into the site bucket during "
    "deployment only; it touches no patient data and has no network path to the platform's workloads."
)


class ViewerSite(Construct):
    """``bucket``, ``distribution`` and ``deployment`` are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        domain_name: str,
        certificate_arn: str,
        app_config_js: str,
        sign_in_origins: Sequence[str],
        api_domain_name: str,
        access_logs_bucket: s3.IBucket,
        logs_key: kms.IKey,
        web_acl_arn: str | None,
        allowed_countries: Sequence[str],
    ) -> None:
        super().__init__(scope, id_)
        dist = require_dist()
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # The viewer's application code and configuration, no patient data (docs/viewer.md).
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            server_access_logs_bucket=access_logs_bucket,
            server_access_logs_prefix=SITE_ACCESS_LOG_PREFIX,
            removal_policy=RemovalPolicy.RETAIN,
        )
        index_html = (dist / "index.html").read_text()
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment="MONAI Imaging Platform viewer: CSP for OHIF, HSTS, nosniff, DENY, no-referrer",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(index_html, sign_in_origins=sign_in_origins),
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
            ),
        )
        app_routes = cloudfront.Function(
            self,
            "AppRoutes",
            comment="Paths of the single-page app (no file extension) answer index.html",
            code=cloudfront.FunctionCode.from_inline(SPA_ROUTES_FUNCTION),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
        )
        # DICOMweb: the viewer's token and the negotiated type reach the proxy; its answers are never cached (it
        # says no-store), but CloudFront forwards headers only through a cache key, whose TTLs cannot all be 0.
        dicomweb_policy = cloudfront.CachePolicy(
            self,
            "DicomWebPassThrough",
            comment="Viewer DICOMweb: Authorization and Accept forwarded, answers not cached (no-store)",
            header_behavior=cloudfront.CacheHeaderBehavior.allow_list("Authorization", "Accept"),
            query_string_behavior=cloudfront.CacheQueryStringBehavior.all(),
            cookie_behavior=cloudfront.CacheCookieBehavior.none(),
            min_ttl=Duration.seconds(0),
            default_ttl=Duration.seconds(0),
            max_ttl=Duration.seconds(1),
            enable_accept_encoding_gzip=True,
            enable_accept_encoding_brotli=True,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment="MONAI Imaging Platform viewer (OHIF) and its DICOMweb proxy",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
                function_associations=[cloudfront.FunctionAssociation(
                    function=app_routes, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                )],
            ),
            additional_behaviors={
                f"{DICOMWEB_PATH}/*": cloudfront.BehaviorOptions(
                    origin=origins.HttpOrigin(
                        api_domain_name,
                        protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
                        origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
                    ),
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                    cache_policy=dicomweb_policy,
                    response_headers_policy=headers,
                ),
            },
            domain_names=[domain_name],
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn),
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
            ssl_support_method=cloudfront.SSLMethod.SNI,
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_root_object="index.html",
            enable_logging=True,
            log_bucket=access_logs_bucket,
            log_file_prefix=ACCESS_LOG_PREFIX,
            web_acl_id=web_acl_arn,
            geo_restriction=cloudfront.GeoRestriction.allowlist(*allowed_countries) if allowed_countries else None,
        )
        self.deployment = s3_deployment.BucketDeployment(
            self,
            "Files",
            sources=[
                s3_deployment.Source.asset(str(dist), exclude=list(EXCLUDED)),
                # Written at deploy time: the user pool, app client and data store IDs resolve then.
                s3_deployment.Source.data("app-config.js", app_config_js),
            ],
            destination_bucket=self.bucket,
            # Revalidate every file on use (CloudFront and browsers): a deployment reaches every browser at once
            # without an invalidation (whose API would need cloudfront:CreateInvalidation on "*"); the bundles'
            # names carry their hashes, so revalidating them is a 304.
            cache_control=[s3_deployment.CacheControl.no_cache()],
            memory_limit=DEPLOYMENT_MEMORY_MB,
            log_group=encrypted_log_group(self, "FilesLogs", key=logs_key, retention_days=FUNCTION_LOG_RETENTION_DAYS),
        )
        self._acknowledge(web_acl_arn=web_acl_arn, allowed_countries=allowed_countries)

    def _acknowledge(self, *, web_acl_arn: str | None, allowed_countries: Sequence[str]) -> None:
        acknowledge(self.bucket, ["HIPAA.Security-S3DefaultEncryptionKMS"], SITE_ENCRYPTION_REASON)
        acknowledge(self.bucket, ["HIPAA.Security-S3BucketReplicationEnabled"], SITE_REPLICATION_REASON)
        skip_checkov(self.bucket, {"CKV_AWS_145": SITE_ENCRYPTION_REASON})
        distribution_skips = {"CKV_AWS_310": ORIGIN_FAILOVER_REASON}
        if web_acl_arn is None:
            acknowledge(self.distribution, ["AwsSolutions-CFR2"], NO_WEB_ACL_REASON)
            distribution_skips["CKV_AWS_68"] = NO_WEB_ACL_REASON
        if not allowed_countries:
            acknowledge(self.distribution, ["AwsSolutions-CFR1"], NO_GEO_RESTRICTION_REASON)
            distribution_skips["CKV_AWS_374"] = NO_GEO_RESTRICTION_REASON
        skip_checkov(self.distribution, distribution_skips)
        # CDK's own deployment function (one per stack and memory size) copies the files at deploy time.
        handler = next(c for c in Stack.of(self).node.children
                       if c.node.id.startswith("Custom::CDKBucketDeployment"))
        assert isinstance(handler, lambda_.Function)
        role = self.deployment.handler_role
        acknowledge(role, ["AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                           "AWSLambdaBasicExecutionRole]"], DEPLOYMENT_IAM4_REASON)
        acknowledge_grant_policy(role)
        acknowledge_wildcards(role.node.find_child("DefaultPolicy"), DEPLOYMENT_IAM5_REASON)
        acknowledge(handler, ["AwsSolutions-L1"], DEPLOYMENT_RUNTIME_REASON)
        acknowledge(handler, ["HIPAA.Security-LambdaDLQ"], DEPLOYMENT_DLQ_REASON)
        acknowledge(handler, ["HIPAA.Security-LambdaConcurrency"], DEPLOYMENT_CONCURRENCY_REASON)
        acknowledge(handler, ["HIPAA.Security-LambdaInsideVPC"], DEPLOYMENT_VPC_REASON)
        skip_checkov(handler, {
            "CKV_AWS_173": DEPLOYMENT_ENVIRONMENT_REASON,
            "CKV_AWS_115": DEPLOYMENT_CONCURRENCY_REASON,
            "CKV_AWS_116": DEPLOYMENT_DLQ_REASON,
            "CKV_AWS_117": DEPLOYMENT_VPC_REASON,
        })
