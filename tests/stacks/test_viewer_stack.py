"""Viewer stack: Cognito sign-in (MFA required, no self sign-up), the JWT-authorized SigV4 proxy that may only read
the one data store, and CloudFront over the private site bucket (OAC, TLS 1.2, security headers, access logs)
serving OHIF's dist/ with the generated app-config.js."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stacks.viewer import ohif_site
from stacks.viewer.ohif_site import DIST, EXCLUDED, SECURITY_HEADERS, SPA_ROUTES_FUNCTION, is_app_route
from stacks.viewer.proxy import DICOMWEB_READ_ACTIONS, THROTTLE_BURST, THROTTLE_RATE
from stacks.viewer.sign_in import DICOMWEB_READ_SCOPE, SCOPES
from stacks.viewer.stack import ViewerStack
from tests.stacks.assembly import (
    PROJECT_ROOT,
    VIEWER_CERTIFICATE_ARN,
    VIEWER_DOMAIN,
    VIEWER_OVERRIDES,
    Assembly,
    as_list,
    flatten,
)
from tests.stacks.scaffold import Scaffold, alone

VIEWER = "Viewer"
URL = f"https://{VIEWER_DOMAIN}"


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        ViewerStack,
        VIEWER,
        keys=scaffold.keys,
        network=scaffold.network,
        dicom_store=scaffold.dicom_store,
        access_logs_bucket=scaffold.access_logs_bucket,
    )


assembly = alone(build, VIEWER_OVERRIDES)
# A web ACL and a country list: the two optional protections of the distribution.
WEB_ACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/viewer/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
protected_assembly = alone(build, {**VIEWER_OVERRIDES, "platform.viewer.webAclArn": WEB_ACL_ARN,
                                   "platform.viewer.allowedCountries": '["US", "CA"]'})


def one(assembly: Assembly, type_: str, prefix: str = "") -> dict[str, Any]:
    return dict(assembly.one(VIEWER, type_, prefix)["Properties"])


def test_users_are_added_by_an_administrator_and_sign_in_with_a_second_factor(assembly: Assembly) -> None:
    pool = one(assembly, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True  # no self sign-up
    assert pool["MfaConfiguration"] == "ON"  # required, not optional
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]  # an authenticator app; no SMS
    assert pool["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"
    password = pool["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 14
    assert all(password[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))
    assert assembly.one(VIEWER, "AWS::Cognito::UserPool")["DeletionPolicy"] == "Retain"
    assert URL in pool["AdminCreateUserConfig"]["InviteMessageTemplate"]["EmailMessage"]


def test_the_viewer_client_uses_the_code_flow_without_a_secret_on_the_viewer_host(assembly: Assembly) -> None:
    client = flatten(one(assembly, "AWS::Cognito::UserPoolClient"))
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit flow: tokens never ride in URLs
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthScopes"][0] == "openid"
    assert client["AllowedOAuthScopes"][1].endswith("/read")  # <resource server>/read
    assert client["CallbackURLs"] == [f"{URL}{ohif_site.CALLBACK_PATH}"]
    assert client["LogoutURLs"] == [f"{URL}{ohif_site.SIGNED_OUT_PATH}"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    server = one(assembly, "AWS::Cognito::UserPoolResourceServer")
    assert f"{server['Identifier']}/{server['Scopes'][0]['ScopeName']}" == DICOMWEB_READ_SCOPE
    domain = one(assembly, "AWS::Cognito::UserPoolDomain")
    assert domain["Domain"] == "monai-imaging-dev-viewer"


def test_every_dicomweb_route_requires_a_viewer_access_token_with_the_read_scope(assembly: Assembly) -> None:
    routes = assembly.resources(VIEWER, "AWS::ApiGatewayV2::Route")
    assert [r["Properties"]["RouteKey"] for r in routes.values()] == ["GET /dicom-web/{proxy+}"]  # reads only
    (route,) = routes.values()
    assert route["Properties"]["AuthorizationType"] == "JWT"
    assert route["Properties"]["AuthorizationScopes"] == [DICOMWEB_READ_SCOPE]
    authorizer = flatten(one(assembly, "AWS::ApiGatewayV2::Authorizer"))
    pool_id = next(iter(assembly.resources(VIEWER, "AWS::Cognito::UserPool")))
    client_id = next(iter(assembly.resources(VIEWER, "AWS::Cognito::UserPoolClient")))
    assert authorizer["JwtConfiguration"] == {"Issuer": f"<{pool_id}.ProviderURL>", "Audience": [f"<{client_id}>"]}
    stage = one(assembly, "AWS::ApiGatewayV2::Stage")
    assert stage["DefaultRouteSettings"] == {"ThrottlingBurstLimit": THROTTLE_BURST, "ThrottlingRateLimit": THROTTLE_RATE}
    assert "$context.authorizer.claims.sub" in stage["AccessLogSettings"]["Format"]  # who read
    log_group = assembly.templates[VIEWER]["Resources"][stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]]
    assert "KmsKeyId" in log_group["Properties"]


def _role_statements(assembly: Assembly, function_prefix: str) -> list[dict[str, Any]]:
    function = one(assembly, "AWS::Lambda::Function", function_prefix)
    role_id = function["Role"]["Fn::GetAtt"][0]
    policies = [p["Properties"] for p in assembly.resources(VIEWER, "AWS::IAM::Policy").values()
                if {"Ref": role_id} in p["Properties"]["Roles"]]
    return [s for p in policies for s in flatten(p["PolicyDocument"]["Statement"])]


def test_the_proxy_may_only_read_dicomweb_of_the_one_data_store(assembly: Assembly) -> None:
    statements = _role_statements(assembly, "DicomWebFunction")
    reads = [s for s in statements if any(a.startswith("medical-imaging:") for a in as_list(s["Action"]))]
    (read,) = reads
    assert sorted(as_list(read["Action"])) == sorted(DICOMWEB_READ_ACTIONS)
    (resource,) = as_list(read["Resource"])
    assert resource.startswith("<output:PublishOutputFnGetAttDatastoreDatastoreArn")  # the data store, no wildcard
    assert not [a for s in statements for a in as_list(s["Action"]) if "Store" in a or a.endswith(":*")]
    function = one(assembly, "AWS::Lambda::Function", "DicomWebFunction")
    assert function["VpcConfig"]["SubnetIds"]  # reads through the VPC endpoint, like every platform function
    assert function["ReservedConcurrentExecutions"] > 0
    env = flatten(function["Environment"]["Variables"])
    assert env["DICOMWEB_ENDPOINT"] == "https://dicom-medical-imaging.us-east-1.<AWS::URLSuffix>"
    assert "DatastoreDatastoreId" in env["DATASTORE_ID"]


def _distribution(assembly: Assembly) -> dict[str, Any]:
    return dict(one(assembly, "AWS::CloudFront::Distribution")["DistributionConfig"])


def test_cloudfront_serves_the_site_on_the_viewer_host_with_tls_1_2_and_access_logs(assembly: Assembly) -> None:
    config = _distribution(assembly)
    assert config["Aliases"] == [VIEWER_DOMAIN]
    assert config["ViewerCertificate"] == {"AcmCertificateArn": VIEWER_CERTIFICATE_ARN,
                                           "MinimumProtocolVersion": "TLSv1.2_2021", "SslSupportMethod": "sni-only"}
    logging = flatten(config["Logging"])
    assert "AccessLogs" in logging["Bucket"]
    assert logging["Prefix"] == "viewer-cloudfront/"
    default = config["DefaultCacheBehavior"]
    assert default["ViewerProtocolPolicy"] == "redirect-to-https"
    assert [f["EventType"] for f in default["FunctionAssociations"]] == ["viewer-request"]
    (site_origin,) = [o for o in config["Origins"] if "S3OriginConfig" in o]
    assert "OriginAccessControlId" in site_origin  # origin access control, the bucket stays private
    (dicomweb,) = config["CacheBehaviors"]
    assert dicomweb["PathPattern"] == "/dicom-web/*"
    assert dicomweb["AllowedMethods"] == ["GET", "HEAD"]
    (api_origin,) = [o for o in config["Origins"] if o["Id"] == dicomweb["TargetOriginId"]]
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert api_origin["CustomOriginConfig"]["OriginSSLProtocols"] == ["TLSv1.2"]
    # The viewer's token and the DICOMweb media type reach the proxy; nothing is kept (the proxy says no-store).
    policy = one(assembly, "AWS::CloudFront::CachePolicy")["CachePolicyConfig"]
    forwarded = policy["ParametersInCacheKeyAndForwardedToOrigin"]
    assert forwarded["HeadersConfig"]["Headers"] == ["Authorization", "Accept"]
    assert policy["DefaultTTL"] == 0
    assert "WebACLId" not in config
    assert "Restrictions" not in config


def test_a_web_acl_and_a_country_list_are_attached_when_configured(protected_assembly: Assembly) -> None:
    config = _distribution(protected_assembly)
    assert config["WebACLId"] == WEB_ACL_ARN
    assert config["Restrictions"]["GeoRestriction"] == {"RestrictionType": "whitelist", "Locations": ["US", "CA"]}


def test_every_answer_carries_the_security_headers_the_loopback_test_serves(assembly: Assembly) -> None:
    config = _distribution(assembly)
    (policy_id,) = {config["DefaultCacheBehavior"]["ResponseHeadersPolicyId"]["Ref"],
                    config["CacheBehaviors"][0]["ResponseHeadersPolicyId"]["Ref"]}
    headers = assembly.templates[VIEWER]["Resources"][policy_id]["Properties"]["ResponseHeadersPolicyConfig"]
    security = headers["SecurityHeadersConfig"]
    hsts = security["StrictTransportSecurity"]
    rendered = {
        "Strict-Transport-Security": f"max-age={hsts['AccessControlMaxAgeSec']}"
        + ("; includeSubDomains" if hsts["IncludeSubdomains"] else ""),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": security["FrameOptions"]["FrameOption"],
        "Referrer-Policy": security["ReferrerPolicy"]["ReferrerPolicy"],
    }
    assert rendered == SECURITY_HEADERS
    csp = flatten(security["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    domain_id = next(iter(assembly.resources(VIEWER, "AWS::Cognito::UserPoolDomain")))
    expected = ohif_site.content_security_policy(
        (DIST / "index.html").read_text(),
        sign_in_origins=["https://cognito-idp.us-east-1.<AWS::URLSuffix>",
                         f"https://<{domain_id}>.auth.us-east-1.amazoncognito.com"],
    )
    assert csp == expected
    assert "'unsafe-eval'" in csp  # without it OHIF shows the CT and never the SEG


def _asset_folder(assembly: Assembly, name: str) -> Path:
    folders = [p for p in assembly.outdir.glob("asset.*") if (p / name).is_file()]
    assert len(folders) == 1, folders
    return folders[0]


def test_the_site_is_ohifs_dist_less_the_excluded_folders(assembly: Assembly) -> None:
    deployment = flatten(one(assembly, "Custom::CDKBucketDeployment"))
    assert len(deployment["SourceObjectKeys"]) == 2  # dist/, then app-config.js
    site = _asset_folder(assembly, "index.html")
    assert (site / "index.html").read_bytes() == (DIST / "index.html").read_bytes()
    shipped = {p.name for p in site.iterdir()}
    assert shipped == {p.name for p in DIST.iterdir()} - set(EXCLUDED)
    assert not shipped & set(EXCLUDED)
    assert deployment["SystemMetadata"] == {"cache-control": "no-cache"}


def test_app_config_names_the_pool_the_client_and_the_proxy(assembly: Assembly) -> None:
    config_file = _asset_folder(assembly, "app-config.js") / "app-config.js"
    text = config_file.read_text()
    assert text.startswith("window.config = ")
    config = json.loads(text.removeprefix("window.config = ").rstrip().removesuffix(";"))
    (source,) = config["dataSources"]
    assert source["configuration"]["qidoRoot"] == source["configuration"]["wadoRoot"] == "/dicom-web"
    bulk = source["configuration"]["bulkDataURI"]
    assert bulk["prefixWith"] == "/dicom-web/"
    # HealthImaging's own host and the data store ID (a deploy-time marker) are rewritten onto /dicom-web.
    assert re.fullmatch(r"https://dicom-medical-imaging\.us-east-1\.<<marker:0xbaba:\d>>/datastore/<<marker:0xbaba:\d>>/",
                        bulk["startsWith"])
    (oidc,) = config["oidc"]
    assert oidc["response_type"] == "code"
    assert oidc["scope"] == SCOPES
    assert oidc["redirect_uri"] == ohif_site.CALLBACK_PATH
    assert "<<marker" in oidc["authority"]  # the pool's issuer, resolved at deploy
    assert "<<marker" in oidc["client_id"]
    assert oidc["metadataSeed"]["end_session_endpoint"].endswith(f"&logout_uri={URL}/")


# (path, answered with index.html): the single-page app's routes, and assets that must stay 404 when missing.
APP_ROUTES = [
    ("/", True),
    ("/viewer", True),
    ("/callback", True),
    ("/segmentation/", True),
    ("/app-config.js", False),
    ("/missing.bundle.js", False),
    ("/assets/android-chrome-36x36.png", False),
]


@pytest.mark.parametrize(("path", "app_route"), APP_ROUTES)
def test_the_edge_function_and_the_loopback_site_route_alike(path: str, app_route: bool) -> None:
    # The CloudFront function's JavaScript, run by node, against the rule the loopback server applies.
    script = SPA_ROUTES_FUNCTION + f"\nconsole.log(handler({{request: {{uri: {json.dumps(path)}}}}}).uri);\n"
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT)
    assert (result.stdout.strip() == "/index.html") == app_route
    assert is_app_route(path) == app_route


def test_the_pinned_ohif_version_is_the_installed_one() -> None:
    package = json.loads((ohif_site.OHIF_PACKAGE_DIR / "package.json").read_text())
    assert package["dependencies"] == {"@ohif/app": ohif_site.OHIF_VERSION}  # exact, no range
    installed = json.loads((DIST.parent / "package.json").read_text())
    assert installed["version"] == ohif_site.OHIF_VERSION
    lock = json.loads((ohif_site.OHIF_PACKAGE_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@ohif/app"]["integrity"].startswith("sha512-")


def test_inline_script_hashes_follow_index_html() -> None:
    # OHIF 3.13.2's two inline scripts: the hashes Chromium accepted under this CSP (tests/integration/test_viewer.py).
    assert ohif_site.inline_script_hashes((DIST / "index.html").read_text()) == [
        "'sha256-VggY0rSMrfuUfyGbMQUTdohoMO4fFh+5LLFfr7rG50g='", "'sha256-12PW7jQ7q6uBo6f025aNINHBa58dqEw1kjWTLzM/lTg='"]
    html = "<script>a()</script><script src=/x.js></script><script>\nb()\n</script>"
    assert ohif_site.inline_script_hashes(html) == [
        "'sha256-qVpDBgj7bpq5hMAcGp3AOc79J3Y1Z4HvySTwKrWDoy4='", "'sha256-NlXKTQe8YfLmZqnEm5aXK1Lb/1wWgkKgNs+lNRY6yOo='"]
    assert ohif_site.inline_script_hashes("<script src='/app.js'></script>") == []  # must not: no inline script
