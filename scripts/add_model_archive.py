"""Add a model to the multi-model (Triton) endpoint: package a model directory and copy it under the prefix.

Usage:
    python -m scripts.add_model_archive --model-dir DIR --name NAME --bucket MODEL_ARTIFACTS_BUCKET

The endpoint's ModelDataUrl is ``s3://<bucket>/models/triton/``; SageMaker loads ``<NAME>.tar.gz`` from there on
the first request with ``TargetModel=<NAME>.tar.gz``. No endpoint update, no deploy. An existing archive is never
overwritten: instances that already loaded a name keep serving their cached copy, so a new version needs a
new name (``spleen_ct_segmentation-v2``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from model_code.serving.triton_package import ARCHIVE_SUFFIX, check_model_name, package_triton_model
from stacks.serving.multi_model import MULTI_MODEL_PREFIX


class ArchiveExistsError(RuntimeError):
    pass


def archive_key(name: str) -> str:
    return f"{MULTI_MODEL_PREFIX}{check_model_name(name)}{ARCHIVE_SUFFIX}"


def _exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def add_model_archive(s3: Any, *, model_dir: Path, name: str, bucket: str) -> str:
    """Package ``model_dir`` as ``<name>.tar.gz`` and upload it; returns the TargetModel to call it with."""
    key = archive_key(name)
    if _exists(s3, bucket, key):
        raise ArchiveExistsError(
            f"s3://{bucket}/{key} already exists: instances that loaded it keep serving their cached copy, so "
            f"publish the new version under a new name (e.g. --name {name}-v2) and call that TargetModel"
        )
    with tempfile.TemporaryDirectory(prefix="model-archive-") as staging:
        archive = package_triton_model(model_dir, Path(staging) / f"{name}{ARCHIVE_SUFFIX}")
        # The bucket encrypts with the platform's data key by default; no per-object key to pass here.
        s3.upload_file(str(archive), bucket, key)
    return f"{name}{ARCHIVE_SUFFIX}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="model.ts + metadata.json (see model_dir.py)")
    parser.add_argument("--name", required=True, help="model name; the archive is <name>.tar.gz")
    parser.add_argument("--bucket", required=True, help="the data stack's ModelArtifactsBucketName output")
    args = parser.parse_args(argv)

    import boto3

    try:
        target = add_model_archive(boto3.client("s3"), model_dir=args.model_dir, name=args.name, bucket=args.bucket)
    except (ArchiveExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"uploaded s3://{args.bucket}/{archive_key(args.name)}; invoke the endpoint with TargetModel={target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
