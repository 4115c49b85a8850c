"""A DICOMweb client for any server: QIDO-RS search, WADO-RS series metadata and instances, STOW-RS store.

The protocol work (URLs, multipart/related bodies, DICOM JSON) is ``dicomweb-client``'s; this module adds what the
platform needs around it:

* one ``requests`` session per client, optionally signed with SigV4 (:mod:`model_code.core.dicomweb.sigv4`, for
  HealthImaging's ``https://dicom-medical-imaging.<region>.amazonaws.com/datastore/<id>`` roots);
* retries as in the HealthImaging connector: throttling (429) and transient server errors (500, 502, 503, 504,
  408) are retried with exponential backoff, dropped connections too (``dicomweb-client``'s ``retrying``); other
  answers fail at once;
* every failure as a :mod:`~model_code.core.dicomweb.errors` type naming the URL and what to do;
* a store that is never a silent loss: no instance in the response's Failed SOP Sequence, and each one readable
  afterwards (its WADO-RS metadata), else :class:`DicomWebStoreRejected`.

Series are read the way HealthImaging serves them (it has no series-level instance retrieval): the series
metadata first (which instances, and a 404 before any pixels move), then each instance, in parallel.
"""

from __future__ import annotations

import io
import platform
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal, TypeVar

import pydicom
import requests
import retrying
from dicomweb_client.api import DICOMwebClient

from model_code.core.dicom.series import ImageSeries, StackGeometry, series_from_datasets
from model_code.core.dicomweb.errors import (
    DicomWebAccessDenied,
    DicomWebError,
    DicomWebNotFound,
    DicomWebStoreRejected,
    FailedInstance,
)
from model_code.core.dicomweb.sigv4 import SigV4Auth, healthimaging_region
from model_code.core.errors import InvalidSeriesError

AuthMode = Literal["none", "sigv4"]
AUTH_MODES: tuple[AuthMode, ...] = ("none", "sigv4")
DEFAULT_MAX_ATTEMPTS = 5
# retrying's exponential wait: 2**attempt * multiplier ms, so 0.5, 1, 2, 4 s between five attempts.
DEFAULT_BACKOFF_MS = 250
RETRIED_STATUSES = (
    HTTPStatus.TOO_MANY_REQUESTS,
    HTTPStatus.REQUEST_TIMEOUT,
    HTTPStatus.INTERNAL_SERVER_ERROR,
    HTTPStatus.BAD_GATEWAY,
    HTTPStatus.SERVICE_UNAVAILABLE,
    HTTPStatus.GATEWAY_TIMEOUT,
)
# HealthImaging's StoreDICOM takes up to 1 GB a request. dicomweb-client streams bodies larger than its chunk size
# with chunked transfer encoding, which SigV4 cannot sign (the body hash needs the whole body): never stream.
MAX_STORE_BYTES = 1_000_000_000
DEFAULT_TIMEOUT_S = (10.0, 120.0)  # (connect, read): a 1 GB STOW answers in well under two minutes
# HealthImaging's DICOMweb GETs allow 50 requests a second (100 burst): 8 in flight stay under it.
DEFAULT_MAX_WORKERS = 8
USER_AGENT = f"monai-imaging-platform-dicomweb/1 Python/{platform.python_version()}"

# DICOM tags (keywords in comments) read from DICOM JSON.
_SOP_INSTANCE_UID = "00080018"  # SOPInstanceUID


def default_auth(url: str) -> AuthMode:
    """sigv4 for HealthImaging's DICOMweb host, none for any other server (``--dicomweb-auth``'s default)."""
    return "sigv4" if healthimaging_region(url) else "none"


def make_session(url: str, auth: AuthMode | None = None, *, credentials: Any = None) -> requests.Session:
    """A ``requests`` session for the DICOMweb root ``url``; ``auth`` None picks :func:`default_auth`."""
    mode = auth or default_auth(url)
    if mode not in AUTH_MODES:
        raise ValueError(f"DICOMweb auth must be one of {AUTH_MODES}, got {mode!r}")
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    if mode == "sigv4":
        region = healthimaging_region(url)
        if region is None:
            raise ValueError(
                f"SigV4 signing needs HealthImaging's DICOMweb host (dicom-medical-imaging.<region>.amazonaws.com), "
                f"got {url!r}: use auth none for other servers"
            )
        session.auth = SigV4Auth(region, credentials=credentials)
    return session


@dataclass(frozen=True)
class StoredInstance:
    """One instance a STOW-RS response lists as stored (its Referenced SOP Sequence item)."""

    sop_instance_uid: str
    sop_class_uid: str
    retrieve_url: str  # (0008,1190) where the server serves it; "" when the server did not say
    warning_reason: int | None = None  # (0008,1196): stored, with coercion or elements discarded


_T = TypeVar("_T")


class DicomWebSession:
    """One DICOMweb root (e.g. ``http://pacs/dicom-web`` or HealthImaging's ``.../datastore/<id>``)."""

    def __init__(
        self,
        url: str,
        *,
        auth: AuthMode | None = None,
        credentials: Any = None,
        session: requests.Session | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_ms: int = DEFAULT_BACKOFF_MS,
        timeout_s: float | tuple[float, float] = DEFAULT_TIMEOUT_S,
        max_workers: int = DEFAULT_MAX_WORKERS,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a DICOMweb root is an http(s) URL, got {url!r}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 (1 means no retry), got {max_attempts}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.url = url.rstrip("/")
        self.max_workers = max_workers
        self.client = DICOMwebClient(
            self.url,
            session=session or make_session(self.url, auth, credentials=credentials),
            chunk_size=MAX_STORE_BYTES + 1,
            timeout=timeout_s,
        )
        self.client.set_http_retry_params(
            retry=max_attempts > 1,
            max_attempts=max_attempts,
            wait_exponential_multiplier=backoff_ms,
            retriable_error_codes=RETRIED_STATUSES,
        )

    # --- error mapping --------------------------------------------------------------------------------------

    def _call(self, what: str, url: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except requests.HTTPError as error:
            raise _http_error(what, url, error.response) from error
        except retrying.RetryError as error:  # every attempt answered a retried status: the last answer says why
            raise _http_error(what, url, _last_response(error), attempts=error.last_attempt.attempt_number) from error
        except (requests.ConnectionError, requests.Timeout) as error:
            raise DicomWebError(
                f"{what}: the DICOMweb server at {self.url} did not answer ({error.__class__.__name__}) after "
                "retries: check the URL, the network path and that the server is up",
                url=url,
            ) from error

    # --- QIDO-RS --------------------------------------------------------------------------------------------

    def search_series(self, study_instance_uid: str, **search_filters: str) -> list[dict[str, Any]]:
        """QIDO-RS ``/studies/{study}/series``: the study's series as DICOM JSON (empty for an unknown study)."""
        url = f"{self.url}/studies/{study_instance_uid}/series"
        found = self._call(
            "search for series",
            url,
            lambda: self.client.search_for_series(
                study_instance_uid, search_filters=dict(search_filters) or None, get_remaining=True
            ),
        )
        return list(found)

    # --- WADO-RS --------------------------------------------------------------------------------------------

    def series_metadata(self, study_instance_uid: str, series_instance_uid: str) -> list[dict[str, Any]]:
        """WADO-RS ``/studies/{study}/series/{series}/metadata``: every instance's DICOM JSON (no bulk data)."""
        url = f"{self.url}/studies/{study_instance_uid}/series/{series_instance_uid}/metadata"
        metadata = self._call(
            "read series metadata",
            url,
            lambda: self.client.retrieve_series_metadata(study_instance_uid, series_instance_uid),
        )
        if not metadata:
            raise DicomWebNotFound(_missing_series(self.url, study_instance_uid, series_instance_uid), url=url)
        return list(metadata)

    def retrieve_instance(
        self, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str
    ) -> pydicom.Dataset:
        """WADO-RS ``.../instances/{sop}``: the instance as stored (``application/dicom``, any transfer syntax)."""
        url = f"{self.url}/studies/{study_instance_uid}/series/{series_instance_uid}/instances/{sop_instance_uid}"
        return self._call(
            "retrieve instance",
            url,
            lambda: self.client.retrieve_instance(
                study_instance_uid,
                series_instance_uid,
                sop_instance_uid,
                media_types=(("application/dicom", "*"),),
            ),
        )

    def retrieve_series(self, study_instance_uid: str, series_instance_uid: str) -> list[pydicom.Dataset]:
        """Every instance of the series: its metadata, then each instance (``max_workers`` at a time)."""
        metadata = self.series_metadata(study_instance_uid, series_instance_uid)
        uids = [str(item[_SOP_INSTANCE_UID]["Value"][0]) for item in metadata if _SOP_INSTANCE_UID in item]

        def fetch(uid: str) -> pydicom.Dataset:
            return self.retrieve_instance(study_instance_uid, series_instance_uid, uid)

        with ThreadPoolExecutor(max_workers=min(self.max_workers, max(len(uids), 1))) as pool:
            return list(pool.map(fetch, uids))

    def load_series(
        self,
        study_instance_uid: str,
        series_instance_uid: str,
        *,
        check: Callable[[StackGeometry, pydicom.Dataset], None] | None = None,
    ) -> ImageSeries:
        """The series as the shared :class:`ImageSeries` (the type folders, zips and HealthImaging give).

        A series that is not a stack of single-frame images raises :class:`InvalidSeriesError` naming its
        instances' URLs, as a folder's would name its files. ``check`` sees the geometry and first header before
        any pixel is decoded (the serving input limits).
        """
        datasets = self.retrieve_series(study_instance_uid, series_instance_uid)
        base = f"{self.url}/studies/{study_instance_uid}/series/{series_instance_uid}/instances/"
        names = [base + str(getattr(dataset, "SOPInstanceUID", "?")) for dataset in datasets]
        for dataset, name in zip(datasets, names, strict=True):
            frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
            if frames > 1:
                raise InvalidSeriesError(
                    f"the instance is multi-frame ({frames} frames, Modality {getattr(dataset, 'Modality', '?')}): "
                    "only series of single-frame images can be segmented; choose the CT series",
                    [name],
                )
        return series_from_datasets(
            datasets,
            names=names,
            metadata={"source": f"{self.url}/studies/{study_instance_uid}/series/{series_instance_uid}"},
            check=check,
        )

    # --- STOW-RS --------------------------------------------------------------------------------------------

    def store(self, datasets: Sequence[pydicom.Dataset], *, study_instance_uid: str) -> list[StoredInstance]:
        """STOW-RS ``/studies/{study}``: store ``datasets`` into that study; every one must be stored.

        Raises :class:`DicomWebStoreRejected` when the server lists an instance as failed (HTTP 409, 4xx), or when
        the instance cannot be read back afterwards (WADO-RS instance metadata), whatever the response said.
        """
        url = f"{self.url}/studies/{study_instance_uid}"
        size = sum(len(_part10(dataset)) for dataset in datasets)
        if size > MAX_STORE_BYTES:
            raise DicomWebStoreRejected(
                f"{size} bytes is more than one STOW-RS request carries ({MAX_STORE_BYTES}): store fewer instances "
                "a request, or import the file with a HealthImaging import job",
                url=url,
                status=None,
            )
        try:
            response = self.client.store_instances(list(datasets), study_instance_uid=study_instance_uid)
        except requests.HTTPError as error:
            failed = _failed_instances(error.response)
            status = error.response.status_code if error.response is not None else None
            # 409: some instances failed (PS3.18 10.5.3); a 4xx naming failed instances is a rejection too.
            if failed or status == HTTPStatus.CONFLICT:
                raise _rejected(url, status, failed) from error
            raise _http_error("store instances", url, error.response) from error
        except (requests.ConnectionError, requests.Timeout) as error:
            raise DicomWebError(
                f"store instances: the DICOMweb server at {self.url} did not answer ({error.__class__.__name__}): "
                "the instances may or may not be stored; storing them again is safe (same SOP Instance UIDs)",
                url=url,
            ) from error
        failed = [_failed(item) for item in getattr(response, "FailedSOPSequence", [])]
        if failed:
            raise _rejected(url, HTTPStatus.OK, failed)
        listed = {
            str(item.ReferencedSOPInstanceUID): item for item in getattr(response, "ReferencedSOPSequence", [])
        }
        return [self._confirm(dataset, listed.get(str(dataset.SOPInstanceUID)), url) for dataset in datasets]

    def _confirm(self, dataset: pydicom.Dataset, listed: pydicom.Dataset | None, url: str) -> StoredInstance:
        """The stored instance, once the server serves its metadata. A server may list an instance as stored and
        still drop it (Orthanc does when a filter refuses it; AWS's docs disagree on whether HealthImaging keeps
        binary SEG): reading it back is what tells stored from lost."""
        study, series, sop = (str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID),
                              str(dataset.SOPInstanceUID))
        where = f"{self.url}/studies/{study}/series/{series}/instances/{sop}"
        try:
            self._call("read back the stored instance", where + "/metadata",
                       lambda: self.client.retrieve_instance_metadata(study, series, sop))
        except DicomWebNotFound as error:
            said = "listed it as stored" if listed is not None else "did not list it as stored"
            raise DicomWebStoreRejected(
                f"store instances: {url} {said}, but does not hold instance {sop} (SOP class {dataset.SOPClassUID}): "
                "it was dropped; check the server's filters and log, and whether it stores this SOP class",
                url=url,
                status=None,
                failed=[FailedInstance(sop, None)],
            ) from error
        if listed is None:
            return StoredInstance(sop, str(dataset.SOPClassUID), where)
        return StoredInstance(
            sop_instance_uid=sop,
            sop_class_uid=str(getattr(listed, "ReferencedSOPClassUID", "") or dataset.SOPClassUID),
            retrieve_url=str(getattr(listed, "RetrieveURL", "") or where),
            warning_reason=_int_or_none(getattr(listed, "WarningReason", None)),
        )


def _part10(dataset: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset)
    return buffer.getvalue()


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _failed(item: pydicom.Dataset) -> FailedInstance:
    return FailedInstance(str(getattr(item, "ReferencedSOPInstanceUID", "")),
                          _int_or_none(getattr(item, "FailureReason", None)))


def _failed_instances(response: requests.Response | None) -> list[FailedInstance]:
    """The Failed SOP Sequence of an error answer's DICOM JSON body (servers often omit its content type)."""
    if response is None or not response.content:
        return []
    try:
        dataset = pydicom.Dataset.from_json(response.json())
    except (ValueError, TypeError, KeyError):
        return []
    return [_failed(item) for item in getattr(dataset, "FailedSOPSequence", [])]


def _rejected(url: str, status: int | None, failed: Sequence[FailedInstance]) -> DicomWebStoreRejected:
    shown = ", ".join(
        f"{item.sop_instance_uid} (failure reason {hex(item.failure_reason) if item.failure_reason else 'unknown'})"
        for item in failed
    ) or "no instance named"
    return DicomWebStoreRejected(
        f"store instances: {url} rejected the instances (HTTP {status}): {shown}. 0xA900: the instance is not of "
        "this study; 0xA7xx: out of resources; 0xC000/0x0110: the server cannot process it (unsupported SOP class "
        "or transfer syntax)",
        url=url,
        status=status,
        failed=failed,
    )


def _missing_series(root: str, study: str, series: str) -> str:
    return (
        f"series {series} of study {study} is not on {root}: check both UIDs (QIDO-RS {root}/studies/{study}/series "
        "lists the study's series)"
    )


def _last_response(error: retrying.RetryError) -> requests.Response | None:
    value = error.last_attempt.value
    return value if isinstance(value, requests.Response) else None


def _http_error(what: str, url: str, response: requests.Response | None, *, attempts: int = 1) -> DicomWebError:
    status = response.status_code if response is not None else None
    detail = (response.text[:300].strip() if response is not None else "") or "(no body)"
    if attempts > 1:
        detail += f"; {attempts} attempts"
    if status == HTTPStatus.NOT_FOUND:
        return DicomWebNotFound(f"{what}: {url} does not exist (HTTP 404): check the UIDs and the DICOMweb root",
                                url=url, status=status)
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return DicomWebAccessDenied(
            f"{what}: {url} refused the request (HTTP {status}): check the credentials (SigV4 for HealthImaging: the "
            f"role needs the medical-imaging DICOMweb action on the data store) [{detail}]",
            url=url, status=status,
        )
    return DicomWebError(f"{what}: {url} answered HTTP {status} [{detail}]", url=url, status=status)
