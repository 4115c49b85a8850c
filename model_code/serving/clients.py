"""AWS clients for serving, created on first use from the settings (never at import)."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import boto3

from model_code.healthimaging.client import make_client
from model_code.serving.settings import ServingSettings


class ServingClients(Protocol):
    def s3(self) -> Any: ...

    def medical_imaging(self) -> Any: ...


class LazyClients:
    """One client per service per process, built when a request first needs it.

    botocore clients are thread-safe; the lock only keeps two first requests from building two clients.
    """

    def __init__(self, settings: ServingSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._s3: Any = None
        self._medical_imaging: Any = None

    def s3(self) -> Any:
        with self._lock:
            if self._s3 is None:
                self._s3 = boto3.client(
                    "s3", region_name=self._settings.region, endpoint_url=self._settings.s3_endpoint_url
                )
            return self._s3

    def medical_imaging(self) -> Any:
        with self._lock:
            if self._medical_imaging is None:
                # make_client turns botocore's "runtime-" host prefix off for a custom (loopback) endpoint.
                self._medical_imaging = make_client(
                    region_name=self._settings.region or "us-east-1",
                    endpoint_url=self._settings.healthimaging_endpoint_url,
                )
            return self._medical_imaging
