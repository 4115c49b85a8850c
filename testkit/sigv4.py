"""The service side of Signature Version 4: does a request as received carry a valid signature for a secret key?

Written from the Signature Version 4 specification (AWS General Reference, "Create a canonical request", "Create a
string to sign", "Calculate the signature"), not from botocore's signer, so a signer is checked against what the
service recomputes from the request it receives: path, query (decoded, sorted and re-encoded), the signed headers,
the body's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_sigv4(
    method: str, raw_path: str, headers: dict[str, str], secret: str, *, body: bytes = b"",
    service: str = "medical-imaging",
) -> str | None:
    """None when the request's SigV4 signature is right for ``secret`` and ``service``; otherwise why not.
    ``headers`` are the received headers, names in lower case."""
    authorization = headers.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return "not signed"
    fields = dict(part.strip().split("=", 1) for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(","))
    _, date, region, signed_service, _ = fields["Credential"].split("/")
    path, _, query = raw_path.partition("?")
    pairs = [tuple(urllib.parse.unquote(x) for x in [*p.split("=", 1), ""][:2]) for p in query.split("&") if p]
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(pairs))
    signed = fields["SignedHeaders"].split(";")
    missing = [name for name in signed if name not in headers]
    if missing:
        return f"signed headers {missing} were not received"
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed)
    canonical = "\n".join([method, urllib.parse.quote(path, safe="/~"), canonical_query, canonical_headers,
                           fields["SignedHeaders"], hashlib.sha256(body).hexdigest()])
    scope = f"{date}/{region}/{signed_service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), region), signed_service), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if signed_service != service:
        return f"signed for {signed_service}"
    return None if hmac.compare_digest(expected, fields["Signature"]) else "signature does not match"
