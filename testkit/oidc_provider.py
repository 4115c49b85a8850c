"""A loopback OpenID Connect provider in the role of the viewer's Cognito user pool: the sign-in OHIF performs
(authorization code with PKCE) against its discovery, authorize and token endpoints, and the access-token check
the DICOMweb proxy's JWT authorizer makes.

The user is signed in as soon as the browser reaches ``/authorize`` (password and MFA are Cognito's hosted pages,
not OHIF's). What is checked is what a provider checks: the client ID, the registered redirect URI, the scope, the
S256 code challenge against the verifier, one use per code. Tokens are HS256 JWTs with Cognito's claims
(``client_id``, ``token_use``, ``scope`` in access tokens): OHIF reads their claims, never their signature, and the
authorizer here verifies them with the provider's secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from testkit.loopback import loopback_server

TOKEN_LIFETIME_S = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class OidcProvider:
    """``issuer`` is the provider's origin; ``events`` lists what happened, in order ("authorize", "token")."""

    issuer: str
    client_id: str
    redirect_uri: str
    scope: str
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    events: list[str] = field(default_factory=list)
    _codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def sign(self, claims: dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "loopback"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signature = hmac.new(self.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def access_token_claims(self, authorization: str | None) -> dict[str, Any] | None:
        """The claims of a valid ``Authorization: Bearer`` access token of this provider, else None: signature,
        issuer, client, token use, scope and expiry, as API Gateway's JWT authorizer checks a Cognito token."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        try:
            header, payload, signature = authorization.removeprefix("Bearer ").split(".")
            expected = hmac.new(self.secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64url_decode(signature)):
                return None
            claims: dict[str, Any] = json.loads(_b64url_decode(payload))
        except ValueError:
            return None
        valid = (
            claims.get("iss") == self.issuer
            and claims.get("client_id") == self.client_id
            and claims.get("token_use") == "access"
            and set(self.scope.split()) <= set(str(claims.get("scope", "")).split())
            and float(claims.get("exp", 0)) > time.time()
        )
        return claims if valid else None

    def authorizes(self, authorization: str | None) -> bool:
        return self.access_token_claims(authorization) is not None

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["HS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": self.scope.split(),
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """(status, Location or error) for an authorization request."""
        problems = [
            name
            for name, ok in (
                ("client_id", query.get("client_id") == self.client_id),
                ("redirect_uri", query.get("redirect_uri") == self.redirect_uri),
                ("response_type", query.get("response_type") == "code"),
                ("code_challenge_method", query.get("code_challenge_method") == "S256"),
                ("scope", set(self.scope.split()) <= set(query.get("scope", "").split())),
            )
            if not ok
        ]
        if problems:
            return 400, f"invalid authorization request: {problems}"
        code = secrets.token_urlsafe(16)
        self._codes[code] = {"challenge": query.get("code_challenge", ""), "nonce": query.get("nonce", "")}
        self.events.append("authorize")
        location = self.redirect_uri + "?" + urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
        return 302, location

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self._codes.pop(form.get("code", ""), None)  # one use per code
        if grant is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        if _b64url(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier does not match"}
        if form.get("client_id") != self.client_id or form.get("redirect_uri") != self.redirect_uri:
            return 400, {"error": "invalid_client"}
        now = int(time.time())
        common = {"iss": self.issuer, "sub": "reviewer-1", "iat": now, "exp": now + TOKEN_LIFETIME_S}
        id_claims = {**common, "aud": self.client_id, "token_use": "id", "email": "reviewer@example.org"}
        if grant["nonce"]:
            id_claims["nonce"] = grant["nonce"]
        self.events.append("token")
        return 200, {
            "access_token": self.sign({**common, "client_id": self.client_id, "token_use": "access",
                                       "scope": self.scope}),
            "id_token": self.sign(id_claims),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
        }


def _handler(provider: OidcProvider, allowed_origin: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | str, extra: dict[str, str] | None = None) -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            # The viewer's page calls discovery, token and user info from its own origin (Cognito answers CORS).
            self.send_header("Access-Control-Allow-Origin", allowed_origin)
            self.send_header("Access-Control-Allow-Headers", "authorization, content-type")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self._answer(204, "")

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/.well-known/openid-configuration":
                self._answer(200, provider.discovery())
            elif url.path == "/jwks":
                self._answer(200, {"keys": []})
            elif url.path == "/authorize":
                status, target = provider.authorize(query)
                self._answer(status, target, {"Location": target} if status == 302 else None)
            elif url.path == "/userinfo":
                claims = provider.access_token_claims(self.headers.get("Authorization"))
                self._answer(200, {"sub": claims["sub"]}) if claims else self._answer(401, {"error": "invalid_token"})
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
            if urllib.parse.urlsplit(self.path).path != "/token":
                self._answer(404, {"error": "not_found"})
                return
            status, body = provider.token(form)
            self._answer(status, body, {"Cache-Control": "no-store"})

    return Handler


@contextlib.contextmanager
def oidc_provider(*, client_id: str, redirect_uri: str, scope: str, allowed_origin: str) -> Iterator[OidcProvider]:
    """A provider on a free loopback port for one client; ``allowed_origin`` is the viewer's origin (CORS)."""
    provider = OidcProvider(issuer="", client_id=client_id, redirect_uri=redirect_uri, scope=scope)
    with loopback_server(_handler(provider, allowed_origin), name="oidc-provider") as origin:
        provider.issuer = origin  # the handler reads it per request
        yield provider
