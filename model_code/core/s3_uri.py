"""The one S3-URI parser of the platform: ``s3://bucket/prefix`` -> :class:`S3Location`.

Standard library only, and importing nothing else of model_code: the platform's Lambda functions carry a copy of
this very file at the top level of their asset (stacks/components/function_code.py) and import it as ``s3_uri``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_uri(uri: str, *, what: str) -> S3Location:
    """``s3://bucket/prefix`` -> S3Location; anything else raises ValueError saying which value is wrong."""
    match = _S3_URI.match(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        raise ValueError(f"{what} must look like s3://bucket/prefix/, got {uri!r}")
    return S3Location(bucket=match["bucket"], prefix=match["key"] or "")
