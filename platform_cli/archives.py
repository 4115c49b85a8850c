"""``monai-platform archives list|add``: the model archives of the multi-model (Triton) endpoint.

Adding a model is copying ``<name>.tar.gz`` under the endpoint's S3 prefix; the endpoint loads it on the first
request with ``TargetModel=<name>.tar.gz``, with no endpoint update. An archive holds one Triton model folder,
as ``model_code.triton_model.package.package_triton_model`` builds it from a MONAI bundle (a directory, the
zoo's ``.zip`` or a training job's ``model.tar.gz``: unpacked first, then packed as SageMaker unpacks it).
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError as AwsClientError

from model_code.core.s3_uri import parse_s3_uri
from platform_cli import outputs
from platform_cli.errors import UsageError
from platform_cli.runtime import Runtime

ARCHIVE_SUFFIX = ".tar.gz"  # model_code.triton_model.package.ARCHIVE_SUFFIX (imported lazily, where used)


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("archives", help="list or add multi-model endpoint archives")
    commands = parser.add_subparsers(dest="archives_command", required=True, metavar="{list,add}")
    listing = commands.add_parser(
        "list", parents=parents, help="archives under the multi-model prefix (their TargetModel names)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=run_list)
    add = commands.add_parser(
        "add", parents=parents, help="upload a model as <name>.tar.gz under the multi-model prefix"
    )
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path,
                        help="a MONAI bundle to package: a directory, a bundle .zip or a model.tar.gz of one")
    source.add_argument("--archive", type=Path, help="an archive built by package_triton_model (<name>.tar.gz)")
    add.add_argument("--name", help="model name with --model-dir (default: spleen_ct_segmentation)")
    add.add_argument("--replace", action="store_true", help="overwrite an archive of the same name")
    add.set_defaults(run=run_add)


def _prefix(runtime: Runtime) -> tuple[str, str]:
    uri = runtime.output(outputs.MULTI_MODEL_PREFIX)
    location = parse_s3_uri(uri, what=f"stack output {outputs.MULTI_MODEL_PREFIX.key}")
    prefix = location.key
    return location.bucket, (prefix if not prefix or prefix.endswith("/") else prefix + "/")


def run_list(args: argparse.Namespace, runtime: Runtime) -> int:
    bucket, prefix = _prefix(runtime)
    archives = []
    for page in runtime.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    ):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) :]
            if name.endswith(ARCHIVE_SUFFIX):
                archives.append({"targetModel": name, "size": item["Size"], "lastModified": str(item["LastModified"])})
    if args.json:
        runtime.emit(json.dumps(archives, indent=2))
    elif not archives:
        runtime.note(f"no archives under s3://{bucket}/{prefix}")
    else:
        for archive in archives:
            runtime.emit(f"{archive['targetModel']}\t{archive['size']}\t{archive['lastModified']}")
    return 0


def check_archive(path: Path) -> str:
    """The model name of a Triton archive; one top-level folder ``<name>/`` with ``config.pbtxt``."""
    from model_code.triton_model.package import check_model_name

    if not path.name.endswith(ARCHIVE_SUFFIX):
        raise UsageError(f"--archive {path}: the file name must be <model name>{ARCHIVE_SUFFIX} (the TargetModel)")
    try:
        name = check_model_name(path.name[: -len(ARCHIVE_SUFFIX)])
    except ValueError as error:
        raise UsageError(f"--archive {path}: {error}") from error
    try:
        with tarfile.open(path, "r:gz") as archive:
            members = archive.getnames()
    except (OSError, tarfile.TarError) as error:
        raise UsageError(f"--archive {path}: not a readable .tar.gz ({error})") from error
    outside = [member for member in members if member != name and not member.startswith(name + "/")]
    if outside or f"{name}/config.pbtxt" not in members:
        raise UsageError(
            f"--archive {path}: must hold exactly one folder {name}/ with {name}/config.pbtxt (Triton loads the "
            f"folder named like the archive); found {sorted(members)[:10]}: build it with package_triton_model"
        )
    return name


def package(model_dir: Path, name: str, staging: Path) -> Path:
    """The Triton archive of the bundle at ``model_dir`` (directory, .zip or model.tar.gz: the packager opens it),
    under ``staging``."""
    from model_code.core.errors import ModelDirectoryError
    from model_code.triton_model.package import package_triton_model

    try:
        return package_triton_model(model_dir, staging / f"{name}{ARCHIVE_SUFFIX}")
    except (ModelDirectoryError, ValueError) as error:
        raise UsageError(f"--model-dir {model_dir}: {error}") from error


def run_add(args: argparse.Namespace, runtime: Runtime) -> int:
    if args.archive is not None and args.name is not None:
        raise UsageError("--name goes with --model-dir; an --archive is named by its file name")
    bucket, prefix = _prefix(runtime)
    s3 = runtime.client("s3")
    with tempfile.TemporaryDirectory(prefix="monai-platform-") as staging:
        if args.model_dir is not None:
            from model_code.triton_model.package import DEFAULT_MODEL_NAME

            path = package(args.model_dir, args.name or DEFAULT_MODEL_NAME, Path(staging))
        else:
            path = args.archive
        name = check_archive(path)
        key = f"{prefix}{name}{ARCHIVE_SUFFIX}"
        # The endpoint keeps serving a loaded model from its cache after the object changes, so replacing an
        # archive is opt-in; a new name is the reliable way to roll out a new version.
        if not args.replace and _exists(s3, bucket, key):
            raise UsageError(
                f"s3://{bucket}/{key} exists: pass --replace (instances that loaded it keep the old model until "
                "they unload it) or choose a new --name"
            )
        size = path.stat().st_size
        with runtime.progress(total=size, desc=f"upload {path.name}", unit="B", unit_scale=True) as bar:
            s3.upload_file(str(path), bucket, key, Callback=bar.update)
    runtime.note(f"uploaded s3://{bucket}/{key}: call the multi-model endpoint with TargetModel={name}{ARCHIVE_SUFFIX}")
    runtime.emit(f"{name}{ARCHIVE_SUFFIX}")
    return 0


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except AwsClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
