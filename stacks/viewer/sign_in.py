"""Who may open the viewer: a Cognito user pool of its own, users added by an administrator only, a TOTP second
factor required, and one app client that OHIF signs in with (authorization code + PKCE on Cognito's hosted page).

The app client may ask for ``openid`` and ``dicomweb/read``; the DICOMweb proxy's authorizer requires the latter,
so a token of this pool issued for anything else opens no study.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cognito as cognito
from constructs import Construct

from stacks.viewer.ohif_site import CALLBACK_PATH, SIGNED_OUT_PATH, SignIn

RESOURCE_SERVER = "dicomweb"
READ_SCOPE = "read"
DICOMWEB_READ_SCOPE = f"{RESOURCE_SERVER}/{READ_SCOPE}"
SCOPES = f"openid {DICOMWEB_READ_SCOPE}"
# A sign-in lasts a working day (the refresh token); the access token OHIF sends lives an hour.
ACCESS_TOKEN_VALIDITY = Duration.hours(1)
SESSION_VALIDITY = Duration.hours(12)


class ViewerSignIn(Construct):
    """``user_pool``, ``client``, ``domain``; ``sign_in`` (what OHIF's configuration needs), ``issuer`` (what the
    proxy's authorizer trusts) and ``origins`` (what the site's CSP must allow) are public."""

    def __init__(self, scope: Construct, id_: str, *, name: str, domain_prefix: str, viewer_url: str) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=name,
            # An administrator adds each user (docs/viewer.md): nobody signs themselves up to see patient images.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            # Threat protection (compromised credentials, adaptive authentication) enforced: the Plus plan, billed
            # per monthly active user, so nothing while nobody signs in.
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            user_invitation=cognito.UserInvitationConfig(
                email_subject="Your MONAI Imaging Platform viewer account",
                email_body="Sign in to the viewer at " + viewer_url + " as {username} with the temporary password "
                "{####}. You will choose a new password and set up an authenticator app.",
            ),
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        read = cognito.ResourceServerScope(scope_name=READ_SCOPE,
                                           scope_description="Read studies of the platform's data store")
        server = self.user_pool.add_resource_server("DicomWeb", identifier=RESOURCE_SERVER, scopes=[read])
        self.client = self.user_pool.add_client(
            "Viewer",
            user_pool_client_name="ohif-viewer",
            generate_secret=False,  # a browser application cannot keep a secret: PKCE instead
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.resource_server(server, read)],
                callback_urls=[viewer_url + CALLBACK_PATH],
                logout_urls=[viewer_url + SIGNED_OUT_PATH],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=ACCESS_TOKEN_VALIDITY,
            id_token_validity=ACCESS_TOKEN_VALIDITY,
            refresh_token_validity=SESSION_VALIDITY,
        )
        self.domain = self.user_pool.add_domain(
            "HostedSignIn", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix)
        )
        self.issuer = self.user_pool.user_pool_provider_url
        hosted = self.domain.base_url()
        self.origins = (f"https://cognito-idp.{stack.region}.{stack.url_suffix}", hosted)
        self.sign_in = SignIn(
            authority=self.issuer,
            client_id=self.client.user_pool_client_id,
            scope=SCOPES,
            # Cognito's discovery document names neither: sign-out ends the hosted session, then comes back here.
            end_session_endpoint=f"{hosted}/logout?client_id={self.client.user_pool_client_id}"
            f"&logout_uri={viewer_url}{SIGNED_OUT_PATH}",
            revocation_endpoint=f"{hosted}/oauth2/revoke",
        )
