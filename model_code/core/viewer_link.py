"""The viewer's deep link to a study with our SEG on it (docs/viewer.md, "Deep links").

Standard library only, and no model_code import, like ``s3_uri.py``: a Lambda function's asset can carry a copy
of this very file. The browser test opens exactly the link this module builds, so the link every result carries is
the one proven to show the SEG.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

# OHIF's route for a study; ``initialSeriesInstanceUID`` loads that series (our SEG) onto the study's CT at once.
VIEWER_PATH = "/viewer"
# A DICOM UID (PS3.5 9.1): components of digits separated by dots, at most 64 characters.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
UID_MAX = 64
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_viewer_url(url: str, *, what: str = "the viewer URL") -> str:
    """``url`` without a trailing slash; ValueError naming ``what`` unless it is an https origin (http only on
    loopback, for the local test), with no query or fragment."""
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(
            f"{what} must look like https://viewer.example.org (the viewer stack's ViewerUrl), got {url!r}"
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        raise ValueError(f"{what} must use https (http only on loopback), got {url!r}")
    return url.strip().rstrip("/")


def _check_uid(uid: str, what: str) -> str:
    if not isinstance(uid, str) or len(uid) > UID_MAX or not _UID.match(uid):
        raise ValueError(f"{what} must be a DICOM UID (digits and dots, at most {UID_MAX} characters), got {uid!r}")
    return uid


def viewer_link(viewer_url: str, study_uid: str, seg_series_uid: str) -> str:
    """The deep link that opens ``study_uid`` in OHIF with the SEG series ``seg_series_uid`` already on its CT."""
    query = urlencode({
        "StudyInstanceUIDs": _check_uid(study_uid, "the study UID"),
        "initialSeriesInstanceUID": _check_uid(seg_series_uid, "the SEG series UID"),
    })
    return f"{check_viewer_url(viewer_url)}{VIEWER_PATH}?{query}"
