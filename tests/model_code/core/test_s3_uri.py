"""The one S3-URI parser: what it accepts, the message for what it refuses, and that it stands alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from model_code.core import s3_uri
from model_code.core.s3_uri import S3Location, parse_s3_uri


@pytest.mark.parametrize(
    ("uri", "require_key", "expected"),
    [
        ("s3://bucket-1/a/b/", False, S3Location("bucket-1", "a/b/")),  # a prefix, kept as given
        ("s3://my.bucket", False, S3Location("my.bucket", "")),  # the whole bucket
        ("  s3://bucket/key.json ", True, S3Location("bucket", "key.json")),  # surrounding blanks are dropped
        ("s3://bucket/output/seg.dcm", True, S3Location("bucket", "output/seg.dcm")),  # an object
    ],
)
def test_accepted(uri: str, require_key: bool, expected: S3Location) -> None:
    location = parse_s3_uri(uri, what="x", require_key=require_key)
    assert location == expected
    assert parse_s3_uri(location.uri, what="x") == location  # uri round-trips
    bucket, key = location  # unpacks as (bucket, key)
    assert (bucket, key) == (expected.bucket, expected.key)


@pytest.mark.parametrize(
    ("uri", "require_key", "message"),
    [
        ("s://bucket/x", False, r"dicomS3Uri must look like s3://bucket/prefix/, got 's://bucket/x'"),  # typo'd scheme
        ("output/seg.dcm", True, r"must look like s3://bucket/key \(an object\)"),  # no scheme at all
        ("s3://Bucket/x", False, "must look like"),  # S3 bucket names are lowercase
        ("s3://ab/x", False, "must look like"),  # under 3 characters
        (None, False, "got None"),  # not a string (an event field that is absent)
        ("s3://bucket/", True, "must name an object"),  # a bucket where an object is needed
    ],
)
def test_refused_with_the_value_named(uri: object, require_key: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_s3_uri(uri, what="dicomS3Uri", require_key=require_key)


def test_the_file_stands_alone() -> None:
    # The Lambda assets carry a copy of this file: standard library imports only, no model_code.
    tree = ast.parse(Path(s3_uri.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported, "the parser imports re and typing"
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names) | {"__future__"}
