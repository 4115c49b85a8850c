"""Our SEG on its CT in a real browser: OHIF's dist/ (as the viewer stack deploys it, with its generated
app-config.js and security headers) in headless Chromium, signing in against a loopback OpenID Connect provider
and reading a private Orthanc through the site's /dicom-web proxy.

Checked from screenshot pixels: the segment is listed by its label, and the overlay is painted where the planted
organ is in the axial stack view and in the MPR axial, sagittal and coronal views. The must-fail twin: a SEG
flipped head to feet, which axial views cannot tell apart, fails the sagittal view. Screenshots and figures go to
build/viewer/ (`result.json` beside them).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_code.core.dicom.files import load_series
from model_code.core.dicom.seg import build_segmentation
from model_code.core.spleen import spleen_metadata
from model_code.core.viewer_link import viewer_link
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom
from stacks.viewer.ohif_site import (
    CALLBACK_PATH,
    DIST,
    EXCLUDED,
    SignIn,
    app_config,
    app_config_js,
    require_dist,
    security_headers,
)
from testkit import viewer_browser as browser_kit
from testkit.oidc_provider import OidcProvider, oidc_provider
from testkit.orthanc import OrthancServer, orthanc_server
from testkit.viewer_browser import Organ
from testkit.viewer_site import ViewerSite, serve_viewer

pytestmark = pytest.mark.integration

BUILD = Path(__file__).resolve().parents[2] / "build" / "viewer"
# Large enough for a readable view, small enough to store in a fraction of a second: 48 x 160 x 160 voxels.
SHAPE = (48, 160, 160)
SPACING = (2.5, 2.0, 2.0)
CLIENT_ID = "viewer-loopback-client"
SCOPE = "openid dicomweb/read"  # the deployed app client's scopes (stacks/viewer/sign_in.py)


@dataclass(frozen=True)
class Study:
    study_uid: str
    ct_files: list[Path]
    ct_series_uid: str
    organ: Organ
    segs: dict[str, tuple[Path, str]]  # name -> (file, SeriesInstanceUID)
    label: str


def _multipart(paths: list[Path], boundary: str) -> bytes:
    parts = [b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p.read_bytes() + b"\r\n"
             for p in paths]
    return b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"


def stow(dicomweb_url: str, paths: list[Path], study_uid: str) -> None:
    """STOW-RS into the study (what the platform's write-back does); fails on anything but 200."""
    boundary = "viewer-test-boundary"
    request = urllib.request.Request(  # noqa: S310 - loopback Orthanc
        f"{dicomweb_url}/studies/{study_uid}", data=_multipart(paths, boundary), method="POST",
        headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                 "Accept": "application/dicom+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback Orthanc
        assert response.status == 200, response.status


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    """A phantom CT with an off-centre organ, our SEG of it and the same SEG flipped head to feet."""
    folder = tmp_path_factory.mktemp("viewer-study")
    phantom = make_phantom(shape=SHAPE, spacing=SPACING, noise_hu=2.0)
    ct_files = write_dicom_series(phantom.volume_hu, phantom.affine, folder / "ct", series_description="Phantom CT")
    series = load_series(folder / "ct")
    mask = phantom.organ_mask_on(series.affine, series.volume.shape)
    segs = {}
    for name, variant in (("good", mask), ("flipped-head-feet", np.ascontiguousarray(mask[::-1]))):
        seg = build_segmentation(series, variant, metadata=spleen_metadata())
        seg.save_as(folder / f"{name}.dcm", enforce_file_format=True)
        segs[name] = (folder / f"{name}.dcm", str(seg.SeriesInstanceUID))
        label = str(seg.SegmentSequence[0].SegmentLabel)
    return Study(
        study_uid=str(series.datasets[0].StudyInstanceUID),
        ct_files=list(ct_files),
        ct_series_uid=series.series_instance_uid,
        organ=Organ(centre=[float(v) for v in phantom.organ_centre_mm],
                    semi_axes=[float(v) for v in phantom.organ_semi_axes_mm]),
        segs=segs,
        label=label,
    )


@pytest.fixture(scope="module")
def orthanc(study: Study) -> Iterator[OrthancServer]:
    with orthanc_server() as server:
        stow(server.dicomweb_url, study.ct_files, study.study_uid)
        yield server


@pytest.fixture(scope="module")
def signed_in_site(orthanc: OrthancServer) -> Iterator[tuple[ViewerSite, OidcProvider]]:
    """The viewer's origin with sign-in required, and its identity provider."""
    dist = require_dist()
    with serve_viewer(dist=dist, excluded=list(EXCLUDED), dicomweb_url=orthanc.dicomweb_url) as site, \
            oidc_provider(client_id=CLIENT_ID, redirect_uri=site.url(CALLBACK_PATH), scope=SCOPE,
                          allowed_origin=site.origin) as provider:
        config = app_config(
            upstream_root=orthanc.dicomweb_url,
            sign_in=SignIn(authority=provider.issuer, client_id=CLIENT_ID, scope=SCOPE),
        )
        site.app_config_js = app_config_js(config)
        site.headers = security_headers((DIST / "index.html").read_text(), sign_in_origins=[provider.issuer])
        site.authorize = provider.authorizes
        yield site, provider


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser_kit.chromium() as browser:
        yield browser


def deep_link(site: ViewerSite, study: Study, seg_series_uid: str) -> str:
    # The very link results carry (predict --viewer-url writes it into result.json).
    return viewer_link(site.origin, study.study_uid, seg_series_uid)


def show_seg(name: str, study: Study, orthanc: OrthancServer, site: ViewerSite, chromium: Any) -> dict[str, Any]:
    """Store the SEG, open its deep link, check the label and every view; screenshots under build/viewer/<name>/."""
    out = BUILD / name
    out.mkdir(parents=True, exist_ok=True)
    path, series_uid = study.segs[name]
    seen = len(site.requests)
    started = time.monotonic()
    stow(orthanc.dicomweb_url, [path], study.study_uid)
    stored = time.monotonic()
    opened = browser_kit.open_seg(chromium, deep_link(site, study, series_uid), label=study.label,
                                  screenshot=out / "deep-link.png")
    visible = time.monotonic()
    try:
        bulk_data = browser_kit.bulk_data_uris(opened)
        listed = browser_kit.label_listed(opened, study.label)
        checks = [browser_kit.check_axial_stack(opened, study.organ, out)]
        checks += browser_kit.check_mpr(opened, study.organ, out)
    finally:
        browser_kit.close(opened)
    result = {
        "label_listed": listed,
        "views": [asdict(c) for c in checks],
        "failures": browser_kit.view_failures(checks),
        "page_errors": opened.page_errors,
        "bulk_data_uris": bulk_data,
        # What OHIF read through the proxy, by resource (the UIDs dropped): metadata, frames, instances, bulk data.
        "dicomweb_reads": sorted({re.sub(r"[0-9]+(\.[0-9]+)+", "<uid>", r.path.split("?")[0])
                                  for r in site.requests[seen:]}),
        "seconds": {"store": round(stored - started, 2), "store_to_seg_visible": round(visible - started, 2),
                    "deep_link_to_seg_visible": round(opened.seconds, 2)},
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def test_the_viewer_signs_in_and_paints_our_seg_where_the_organ_is(
    study: Study, orthanc: OrthancServer, signed_in_site: tuple[ViewerSite, OidcProvider], chromium: Any
) -> None:
    site, provider = signed_in_site
    result = show_seg("good", study, orthanc, site, chromium)
    assert result["label_listed"], "the segment's label is not in the segmentation panel"
    assert result["failures"] == {}, result["views"]
    assert [v["view"] for v in result["views"]] == ["axial-stack", "mpr-axial", "mpr-sagittal", "mpr-coronal"]
    assert result["page_errors"] == []
    # The deep link went through sign-in (authorization code + PKCE), and DICOMweb saw only signed-in requests.
    assert provider.events[:2] == ["authorize", "token"]
    assert site.requests
    assert all(r.authorized for r in site.requests)
    # Orthanc names itself in its BulkDataURIs (as HealthImaging does); OHIF rewrote them onto the proxy's path
    # (the bulkDataURI settings of the generated configuration), and the rewritten URI resolves through it.
    ct_series = study.ct_series_uid
    raw = json.loads(urllib.request.urlopen(  # noqa: S310 - loopback Orthanc
        f"{orthanc.dicomweb_url}/studies/{study.study_uid}/series/{ct_series}/metadata", timeout=30).read())
    assert raw[0]["7FE00010"]["BulkDataURI"].startswith(orthanc.dicomweb_url + "/")
    uris = result["bulk_data_uris"]
    assert uris
    assert all(u.startswith(f"/dicom-web/studies/{study.study_uid}/") for u in uris), uris
    token = provider.sign({"iss": provider.issuer, "client_id": CLIENT_ID, "token_use": "access", "scope": SCOPE,
                           "sub": "x", "exp": time.time() + 600})
    assert _status(site.url(uris[0]), "Bearer " + token) == 200


def test_a_seg_flipped_head_to_feet_fails_the_sagittal_view(
    study: Study, orthanc: OrthancServer, signed_in_site: tuple[ViewerSite, OidcProvider], chromium: Any
) -> None:
    site, _ = signed_in_site
    result = show_seg("flipped-head-feet", study, orthanc, site, chromium)
    assert result["label_listed"]
    assert "mpr-sagittal" in result["failures"], result["views"]
    # Why the sagittal view is checked: through the organ's centre an axial plane cannot see this flip.
    assert "mpr-axial" not in result["failures"], result["views"]


def _status(url: str, authorization: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_dicomweb_answers_only_a_signed_in_viewer(
    study: Study, signed_in_site: tuple[ViewerSite, OidcProvider]
) -> None:
    site, provider = signed_in_site
    url = site.url(f"/dicom-web/studies?StudyInstanceUID={study.study_uid}")
    claims = {"iss": provider.issuer, "client_id": CLIENT_ID, "token_use": "access", "scope": SCOPE,
              "sub": "x", "exp": time.time() + 600}
    assert _status(url, "Bearer " + provider.sign(claims)) == 200  # must: a valid access token
    assert _status(url, None) == 401  # must not: no token
    assert _status(url, "Bearer " + provider.sign({**claims, "exp": time.time() - 1})) == 401  # expired
    assert _status(url, "Bearer " + provider.sign({**claims, "token_use": "id"})) == 401  # an ID token
    assert _status(url, "Bearer " + provider.sign({**claims, "scope": "openid"})) == 401  # without dicomweb/read
    forged = OidcProvider(issuer=provider.issuer, client_id=CLIENT_ID, redirect_uri="", scope=SCOPE).sign(claims)
    assert _status(url, "Bearer " + forged) == 401  # signed by someone else


def test_the_provider_refuses_what_cognito_refuses() -> None:
    # The sign-in the browser test passes is checked, not waved through: a wrong PKCE verifier, a reused code and a
    # foreign redirect URI are refused (the must-not twins of the browser's sign-in).
    provider = OidcProvider(issuer="http://127.0.0.1:1", client_id=CLIENT_ID, redirect_uri="http://v/callback",
                            scope=SCOPE)
    verifier = "a-long-random-code-verifier-0123456789"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"client_id": CLIENT_ID, "redirect_uri": "http://v/callback", "response_type": "code",
             "code_challenge_method": "S256", "code_challenge": challenge, "scope": SCOPE, "state": "s"}
    assert provider.authorize({**query, "redirect_uri": "http://elsewhere/callback"})[0] == 400
    assert provider.authorize({**query, "scope": "openid"})[0] == 400
    status, location = provider.authorize(query)
    assert status == 302
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier, "client_id": CLIENT_ID,
            "redirect_uri": "http://v/callback"}
    assert provider.token({**form, "code_verifier": "not-the-verifier"})[0] == 400  # and the code is now spent
    status, location = provider.authorize(query)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    status, tokens = provider.token({**form, "code": code})
    assert status == 200  # must: the right verifier
    assert provider.authorizes("Bearer " + tokens["access_token"])
    assert not provider.authorizes("Bearer " + tokens["id_token"])
    assert provider.token({**form, "code": code})[0] == 400  # used once
