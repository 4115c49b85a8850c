"""The OHIF Viewer site the viewer stack deploys: the pinned package's prebuilt ``dist/``, the generated
``app-config.js`` and the Content-Security-Policy the site needs.

Used by the stack (S3 + CloudFront) and by the loopback browser test (tests/integration/test_viewer.py), so the
browser runs the very configuration and headers a deployment serves. Standard library only.

``dist/`` comes from ``stacks/viewer/ohif/package.json`` (``@ohif/app``, exact version, package-lock.json):
``make viewer-site`` runs ``npm ci`` there. Nothing is built: dist/ is served as npm ships it, less EXCLUDED.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OHIF_PACKAGE_DIR = Path(__file__).resolve().parent / "ohif"
DIST = OHIF_PACKAGE_DIR / "node_modules" / "@ohif" / "app" / "dist"
OHIF_VERSION = "3.13.2"  # equal to stacks/viewer/ohif/package.json (a test keeps them equal)

# What a deployment leaves out of dist/, each for a reason. The SEG-on-CT flow was checked in a browser without
# them (tests/integration/test_viewer.py serves dist/ less these too).
EXCLUDED: Mapping[str, str] = {
    "ort": "onnxruntime-web (136 MB) for OHIF's client-side AI tools, which this platform does not use",
    "dicom-microscopy-viewer": "whole-slide microscopy (20 MB); the platform holds CT studies",
    "app-config.js": "OHIF's sample configuration; the stack writes its own (app_config_js)",
    "google.js": "a sample configuration naming Google's OAuth client and Healthcare API",
}

# Where the viewer reads DICOMweb: same origin, so no CORS and connect-src 'self'.
DICOMWEB_PATH = "/dicom-web"
# OHIF's OIDC callback route (a path of the single-page app) and the page after sign-out.
CALLBACK_PATH = "/callback"
SIGNED_OUT_PATH = "/"
DATA_SOURCE_NAME = "platform"


class MissingDistError(FileNotFoundError):
    """OHIF's dist/ is not installed."""


def require_dist(dist: Path = DIST) -> Path:
    if not (dist / "index.html").is_file():
        raise MissingDistError(
            f"OHIF's prebuilt viewer is not installed ({dist}/index.html is missing): run `make viewer-site` "
            "(npm ci in stacks/viewer/ohif, the pinned @ohif/app)"
        )
    return dist


@dataclass(frozen=True)
class SignIn:
    """The OpenID Connect client OHIF signs users in with (the viewer's Cognito user pool and app client).

    ``authority`` is the issuer whose ``/.well-known/openid-configuration`` OHIF reads; ``end_session_endpoint``
    and ``revocation_endpoint`` are given because Cognito's discovery document names neither.
    """

    authority: str
    client_id: str
    scope: str
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None


def data_source(*, upstream_root: str | None = None) -> dict[str, Any]:
    """OHIF's DICOMweb data source at ``DICOMWEB_PATH``.

    ``upstream_root``: the absolute DICOMweb root behind the proxy. Servers write absolute BulkDataURIs naming
    themselves (HealthImaging does for attributes over 1 MB); OHIF rewrites that prefix to the proxy's path, so
    the browser never calls the upstream host (it could not sign the request, and CSP forbids it).
    """
    bulk_data: dict[str, Any] = {"enabled": True, "relativeResolution": "studies"}
    if upstream_root:
        bulk_data.update(startsWith=upstream_root.rstrip("/") + "/", prefixWith=DICOMWEB_PATH + "/")
    return {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": DATA_SOURCE_NAME,
        "configuration": {
            "friendlyName": "Platform data store",
            "name": DATA_SOURCE_NAME,
            "qidoRoot": DICOMWEB_PATH,
            "wadoRoot": DICOMWEB_PATH,
            "wadoUriRoot": DICOMWEB_PATH,
            "qidoSupportsIncludeField": False,
            "supportsReject": False,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
            "dicomUploadEnabled": False,  # the proxy is read-only
            "bulkDataURI": bulk_data,
        },
    }


def app_config(*, upstream_root: str | None = None, sign_in: SignIn | None = None) -> dict[str, Any]:
    """OHIF 3.13's ``window.config`` for the platform: one DICOMweb data source, optional OIDC sign-in."""
    config: dict[str, Any] = {
        "routerBasename": "/",
        "extensions": [],
        "modes": [],
        # Without this the first-visit tour ("Scrolling Through Images") covers the viewport of a deep link.
        "customizationService": {"global": {"ohif.tours": {"$set": []}}},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        # A deep link to a SEG series loads it without the viewport's "load this segmentation?" prompt.
        "disableConfirmationPrompts": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": DATA_SOURCE_NAME,
        "dataSources": [data_source(upstream_root=upstream_root)],
    }
    if sign_in is not None:
        client: dict[str, Any] = {
            "authority": sign_in.authority,
            "client_id": sign_in.client_id,
            # Relative: OHIF makes them absolute on the page's own origin.
            "redirect_uri": CALLBACK_PATH,
            "post_logout_redirect_uri": SIGNED_OUT_PATH,
            # Authorization code with PKCE (oidc-client-ts); tokens stay in the tab's session storage.
            "response_type": "code",
            "scope": sign_in.scope,
            "automaticSilentRenew": True,
            "revokeAccessTokenOnSignout": True,
        }
        seed = {
            key: value
            for key, value in (
                ("end_session_endpoint", sign_in.end_session_endpoint),
                ("revocation_endpoint", sign_in.revocation_endpoint),
            )
            if value
        }
        if seed:
            client["metadataSeed"] = seed
        config["oidc"] = [client]
    return config


def app_config_js(config: Mapping[str, Any]) -> str:
    """The text of ``/app-config.js``: OHIF's index.html loads it before the application bundle."""
    return "window.config = " + json.dumps(config, indent=2, sort_keys=True) + ";\n"


_INLINE_SCRIPT = re.compile(r"<script(?P<attributes>[^>]*)>(?P<body>.*?)</script>", re.DOTALL)


def inline_script_hashes(index_html: str) -> list[str]:
    """CSP sources (``'sha256-...'``) of the inline scripts of OHIF's index.html, in document order.

    Computed from the pinned dist/ rather than written down, so a new OHIF version cannot ship a stale hash.
    """
    hashes = []
    for match in _INLINE_SCRIPT.finditer(index_html):
        if "src=" in match["attributes"] or not match["body"].strip():
            continue
        digest = base64.b64encode(hashlib.sha256(match["body"].encode()).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return hashes


def content_security_policy(index_html: str, *, sign_in_origins: Sequence[str] = ()) -> str:
    """The site's Content-Security-Policy. ``sign_in_origins``: the identity provider's origins the page calls
    (discovery, token and user-info endpoints) or frames (silent token renewal)."""
    sign_in = " ".join(sign_in_origins)
    directives = [
        "default-src 'self'",
        # 'unsafe-eval' is required: OHIF decodes SEG labelmaps with ndarray, which compiles its accessors with
        # new Function(); without it the CT shows and the segmentation silently never does. 'wasm-unsafe-eval'
        # for the image codecs (OpenJPH, CharLS, libjpeg-turbo) compiled to WebAssembly.
        "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval' " + " ".join(inline_script_hashes(index_html)),
        # OHIF's components set inline styles.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        f"connect-src 'self' {sign_in}".rstrip(),
        "worker-src 'self' blob:",
        f"frame-src 'self' {sign_in}".rstrip(),
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    return "; ".join(directives)


# The headers every answer of the site carries besides the CSP (CloudFront's response-headers policy).
SECURITY_HEADERS: Mapping[str, str] = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def security_headers(index_html: str, *, sign_in_origins: Sequence[str] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(index_html, sign_in_origins=sign_in_origins),
        **SECURITY_HEADERS,
    }


def is_app_route(path: str) -> bool:
    """A path of the single-page app (``/viewer``, ``/callback``), answered with index.html: its last segment has
    no file extension. A missing asset (``/x.js``) stays a 404. The CloudFront function SPA_ROUTES_FUNCTION applies
    the same rule at the edge."""
    last = path.rsplit("/", 1)[-1]
    return "." not in last


# CloudFront Functions (JavaScript runtime 2.0), viewer request of the site's default behaviour: the same rule as
# is_app_route. Distribution-wide error pages would also turn the DICOMweb proxy's 403/404 into index.html.
SPA_ROUTES_FUNCTION = """\
function handler(event) {
  var request = event.request;
  var last = request.uri.split('/').pop();
  if (last.indexOf('.') === -1) {
    request.uri = '/index.html';
  }
  return request;
}
"""
