"""The one S3-URI parser: ``s3://bucket/key`` -> :class:`S3Location`, or a ValueError naming the value.

Standard library only, and no model_code import: the Lambda functions' assets carry a copy of this very file
(stacks/), the serving runtime and the ``monai-platform`` CLI import it from here.
"""

from __future__ import annotations

import re
from typing import NamedTuple

SCHEME = "s3://"
# S3's bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, a letter or digit at both ends.
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


class S3Location(NamedTuple):
    """A bucket and a key; for a URI naming a "folder" the key is the key prefix (possibly empty).

    A named tuple, so callers that want the two strings unpack it: ``bucket, key = parse_s3_uri(uri)``.
    """

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def parse_s3_uri(uri: object, *, what: str = "the S3 URI", require_key: bool = False) -> S3Location:
    """``s3://bucket/key`` -> S3Location; anything else raises ValueError saying which value is wrong.

    ``what`` names the value in the message (a request key, an environment variable, an event field);
    ``require_key`` refuses a URI that names no object (``s3://bucket`` or ``s3://bucket/``).
    """
    match = _S3_URI.match(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        shape = "s3://bucket/key (an object)" if require_key else "s3://bucket/prefix/"
        raise ValueError(f"{what} must look like {shape}, got {uri!r}")
    key = match["key"] or ""
    if require_key and not key.strip("/"):
        raise ValueError(f"{what} must name an object (s3://bucket/key), got {uri!r}: it names only the bucket")
    return S3Location(bucket=match["bucket"], key=key)
