"""Resolve the SageMaker DLC base image of each container with the SageMaker SDK v3, offline.

``sagemaker.core.image_uris.retrieve`` reads the SDK's bundled image tables, so no account IDs live in this
repository and no AWS call is made. The buildspec passes the result as the ``BASE_IMAGE`` build arg::

    python containers/resolve_base_images.py --region eu-west-1            # NAME=URI lines
    python containers/resolve_base_images.py --region eu-west-1 --image training --uri-only

Bumping a framework version is one edit to ``IMAGES``; the tests resolve every image in several regions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class BaseImage:
    framework: str
    version: str
    image_scope: str
    # Decides cpu or gpu flavour of the DLC; the endpoints and the training jobs run on GPU instances.
    instance_type: str
    py_version: str | None = None


IMAGES: dict[str, BaseImage] = {
    # The async endpoint: sagemaker-pytorch-inference on TorchServe, Python 3.12.
    "pytorch-inference": BaseImage("pytorch", "2.6.0", "inference", "ml.g5.xlarge", "py312"),
    # The multi-model endpoint: NVIDIA Triton with the python backend.
    "triton-inference": BaseImage("sagemaker-tritonserver", "26.05", "inference", "ml.g5.xlarge"),
    # Training jobs (torchrun over 1..N instances).
    "training": BaseImage("pytorch", "2.8.0", "training", "ml.g5.xlarge", "py312"),
}


def resolve(name: str, region: str, *, instance_type: str | None = None) -> str:
    """The ECR URI of image ``name``'s base in ``region``; ValueError names the unknown image or region."""
    if name not in IMAGES:
        raise ValueError(f"unknown image {name!r}: choose one of {sorted(IMAGES)}")
    from sagemaker.core.image_uris import retrieve

    spec = IMAGES[name]
    return str(
        retrieve(
            framework=spec.framework,
            region=region,
            version=spec.version,
            py_version=spec.py_version,
            instance_type=instance_type or spec.instance_type,
            image_scope=spec.image_scope,
        )
    )


def build_arg_name(name: str) -> str:
    """``pytorch-inference`` -> ``PYTORCH_INFERENCE_BASE_IMAGE`` (the variable the buildspec reads)."""
    return name.upper().replace("-", "_") + "_BASE_IMAGE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--image", action="append", choices=sorted(IMAGES), help="repeatable; default: all")
    parser.add_argument("--instance-type", default=None, help="override the instance type (cpu/gpu flavour)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print {image: uri} as JSON")
    output.add_argument("--uri-only", action="store_true", help="print only the URI (one --image)")
    args = parser.parse_args(argv)
    if not args.region:
        parser.error("--region is required (or set AWS_REGION)")
    names = args.image or sorted(IMAGES)
    if args.uri_only and len(names) != 1:
        parser.error("--uri-only needs exactly one --image")
    try:
        uris = {name: resolve(name, args.region, instance_type=args.instance_type) for name in names}
    except ValueError as error:
        print(f"cannot resolve a base image: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(uris, indent=2, sort_keys=True))
    elif args.uri_only:
        print(uris[names[0]])
    else:
        for name, uri in uris.items():
            print(f"{build_arg_name(name)}={uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
