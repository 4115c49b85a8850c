"""Viewer stack (``viewer.enabled``): the OHIF Viewer over the platform's data store, behind Cognito sign-in.

    browser ──TLS 1.2+──► CloudFront (your host name)
                            ├─ /*            ► private S3 bucket (origin access control): OHIF dist/, app-config.js
                            └─ /dicom-web/*  ► HTTP API (JWT authorizer: this pool's access tokens, dicomweb/read)
                                                 ► proxy function (SigV4) ► HealthImaging DICOMweb, one data store

Sign-in: OHIF sends the user to Cognito's hosted page (password, then the authenticator app's code), comes back
with an authorization code, exchanges it (PKCE) for tokens, and sends the access token with every DICOMweb read.
Deep links from results open ``/viewer?StudyInstanceUIDs=<study>&initialSeriesInstanceUID=<SEG series>``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import PlatformConfig
from stacks.props import DicomStore, PlatformKeys, WorkloadNetwork
from stacks.viewer.ohif_site import DICOMWEB_PATH, app_config, app_config_js
from stacks.viewer.proxy import DicomWebProxy
from stacks.viewer.sign_in import DICOMWEB_READ_SCOPE, ViewerSignIn
from stacks.viewer.site import ViewerSite


def sign_in_domain_prefix(config: PlatformConfig) -> str:
    return config.viewer.sign_in_domain_prefix or f"{config.prefix}-viewer"


class ViewerStack(Stack):
    """``sign_in`` (user pool, client), ``proxy`` (API, function) and ``site`` (bucket, distribution) are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        dicom_store: DicomStore,
        access_logs_bucket: s3.IBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        viewer = config.viewer
        url, domain_name, certificate_arn = viewer.url, viewer.domain_name, viewer.certificate_arn
        # ViewerConfig.check requires both when the viewer is enabled, and only then is this stack built.
        assert url is not None
        assert domain_name is not None
        assert certificate_arn is not None
        self.sign_in = ViewerSignIn(
            self, "SignIn", name=f"{config.prefix}-viewer", domain_prefix=sign_in_domain_prefix(config), viewer_url=url
        )
        self.proxy = DicomWebProxy(
            self,
            "DicomWeb",
            keys=keys,
            network=network,
            dicom_store=dicom_store,
            issuer=self.sign_in.issuer,
            client_id=self.sign_in.client.user_pool_client_id,
            scope_name=DICOMWEB_READ_SCOPE,
        )
        # HealthImaging's BulkDataURIs name its own host; OHIF rewrites them onto /dicom-web (ohif_site.data_source).
        upstream_root = (f"https://dicom-medical-imaging.{self.region}.{self.url_suffix}"
                         f"/datastore/{dicom_store.datastore_id}")
        self.site = ViewerSite(
            self,
            "Site",
            domain_name=domain_name,
            certificate_arn=certificate_arn,
            app_config_js=app_config_js(app_config(upstream_root=upstream_root, sign_in=self.sign_in.sign_in)),
            sign_in_origins=self.sign_in.origins,
            api_domain_name=self.proxy.origin_domain_name,
            access_logs_bucket=access_logs_bucket,
            logs_key=keys.logs_key,
            web_acl_arn=viewer.web_acl_arn,
            allowed_countries=viewer.allowed_countries,
        )

        CfnOutput(self, "ViewerUrl", value=url, description="Open studies here (deep links start with it)")
        CfnOutput(self, "DistributionDomainName", value=self.site.distribution.distribution_domain_name,
                  description=f"Point {domain_name} (CNAME or alias) at this")
        CfnOutput(self, "UserPoolId", value=self.sign_in.user_pool.user_pool_id,
                  description="Add viewer users here (docs/viewer.md)")
        CfnOutput(self, "DicomWebPath", value=DICOMWEB_PATH)
