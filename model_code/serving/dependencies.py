"""botocore's failures that are no fault of the request, as the core's DependencyError (502/503, the cause named).

* no or unusable credentials: 503 (the endpoint cannot reach its data until its role is fixed);
* the network (endpoint unreachable, connection or read timeouts): 502;
* throttling (the service's own throttling error codes): 503 with Retry-After.
"""

from __future__ import annotations

from http import HTTPStatus

from botocore.exceptions import (
    BotoCoreError,
    ConnectionError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ClientError as BotocoreClientError

from model_code.core.errors import DependencyError

# The error codes AWS services answer when they throttle (botocore's retry handler treats the same as
# throttling: botocore/retries/standard.py _THROTTLED_ERROR_CODES, abridged to those S3 and HealthImaging send).
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
     "ProvisionedThroughputExceededException", "RequestLimitExceeded", "SlowDown", "RequestThrottled",
     "ServiceQuotaExceededException"}
)
RETRY_AFTER_S = 5


def dependency_failure(error: BotoCoreError) -> DependencyError | BotoCoreError:
    """The DependencyError for a botocore failure to reach or authenticate to AWS; others come back as they are."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return DependencyError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"the endpoint has no usable AWS credentials ({type(error).__name__}): check its execution role",
        )
    if isinstance(error, EndpointConnectionError | ConnectionError | ReadTimeoutError):
        return DependencyError(
            HTTPStatus.BAD_GATEWAY,
            f"an AWS service did not answer ({type(error).__name__}): retry; if it persists, check the VPC endpoints",
        )
    return error


def throttled(error: BotocoreClientError) -> DependencyError | None:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code not in THROTTLING_CODES:
        return None
    operation = getattr(error, "operation_name", "") or "a request"
    return DependencyError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"AWS throttled {operation} ({code}) after the client's retries: retry later",
        retry_after_s=RETRY_AFTER_S,
    )
