"""Which model_code package may import which, and what each image carries: the one table.

Dependencies point one way: every runtime imports the core; a runtime never imports another runtime, and the
core imports no other model_code package. ``tests/model_code/test_runtime_isolation.py`` imports each package
in a fresh interpreter and fails on any module of a package it may not import or any forbidden library, and
checks each image's copied tree (the Dockerfile's COPY lines, the edge bundle, the MAP) against
:func:`closure`. The export copies the edge runner's tree from here (``model_code.export.bundle``).
docs/architecture.md shows this table; change both together.
"""

from __future__ import annotations

from dataclasses import dataclass

# Never imported by the production tree; tests and benchmarks only, copied into no image.
TEST_SUPPORT = "testkit"
# Heavy libraries that a package may or may not pull in; `forbidden` names a subset per package.
TORCH, MONAI, ONNXRUNTIME = "torch", "monai", "onnxruntime"
BOTO3, BOTOCORE, IMAGECODECS = "boto3", "botocore", "imagecodecs"


@dataclass(frozen=True)
class Package:
    """``model_code.<name>``: the packages it may import (besides itself) and the libraries it must not."""

    name: str
    imports: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str


PACKAGES: dict[str, Package] = {
    package.name: package
    for package in (
        Package("core", (), (TORCH, MONAI, BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "numpy, pydicom and nibabel; highdicom in the SEG writer only"),
        Package("synthetic", (), (TORCH, MONAI, BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "phantoms and DICOM series written from them (make demo, the ONNX export check)"),
        Package("segmentation", ("core",), (BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "the torch engine: pipeline, transforms, networks, the predict CLI"),
        Package("healthimaging", ("core",), (TORCH, MONAI, ONNXRUNTIME),
                "the AWS HealthImaging connector (boto3, imagecodecs' HTJ2K)"),
        Package("serving", ("core", "segmentation", "healthimaging"), (ONNXRUNTIME,),
                "the SageMaker async endpoint: series from a zip, S3 or HealthImaging"),
        Package("triton_model", ("core", "segmentation"), (BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "the Triton python-backend model: zips in, SEGs out"),
        Package("edge", ("core",), (TORCH, MONAI, BOTO3, BOTOCORE, IMAGECODECS),
                "the offline edge runner: numpy + onnxruntime"),
        Package("map_app", ("core", "healthimaging"), (ONNXRUNTIME,),
                "the MONAI Deploy app: stock operators, our HealthImaging loader"),
        Package("training", ("core", "segmentation", "synthetic"), (BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "the SageMaker trainer; the CPU demo trains on synthetic phantoms"),
        Package("export", ("core", "edge", "synthetic"), (BOTO3, BOTOCORE, IMAGECODECS),
                "build-machine tool: torch -> ONNX/TorchScript edge bundle, checked on phantoms"),
    )
}

# What each deliverable carries: the runtime package and everything it may import.
IMAGES: dict[str, str] = {
    "containers/pytorch-inference": "serving",
    "containers/triton-inference": "triton_model",
    "containers/training": "training",
    "map_app (make map-package)": "map_app",
    "edge bundle (python -m model_code.export)": "edge",
}


def closure(name: str) -> tuple[str, ...]:
    """``name`` and every package it may import, directly or through another, sorted."""
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen.add(current)
            pending.extend(PACKAGES[current].imports)
    return tuple(sorted(seen))
