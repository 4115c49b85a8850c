"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) against any server: plain HTTP(S), or SigV4 for AWS HealthImaging.

``DicomWebSession(url)`` reads a series (:meth:`~DicomWebSession.load_series`, the shared ``ImageSeries``) and
stores instances (:meth:`~DicomWebSession.store`); the protocol is ``dicomweb-client``'s (docs/dicomweb.md).
Standard library, ``requests``, ``dicomweb-client`` and pydicom; botocore only inside the SigV4 signer's calls.
"""

from model_code.core.dicomweb.client import (
    AUTH_MODES,
    AuthMode,
    DicomWebSession,
    StoredInstance,
    default_auth,
    make_session,
)
from model_code.core.dicomweb.errors import (
    DicomWebAccessDenied,
    DicomWebError,
    DicomWebNotFound,
    DicomWebStoreRejected,
    FailedInstance,
)
from model_code.core.dicomweb.sigv4 import SigV4Auth, healthimaging_region

__all__ = [
    "AUTH_MODES",
    "AuthMode",
    "DicomWebAccessDenied",
    "DicomWebError",
    "DicomWebNotFound",
    "DicomWebSession",
    "DicomWebStoreRejected",
    "FailedInstance",
    "SigV4Auth",
    "StoredInstance",
    "default_auth",
    "healthimaging_region",
    "make_session",
]
