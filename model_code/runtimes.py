"""Which model_code package may import which, and what each deliverable carries: the one table.

Dependencies point one way: every runtime imports the core; a runtime never imports another runtime, and the
core imports no other model_code package. ``tests/model_code/test_runtime_isolation.py`` imports each package
in a fresh interpreter and fails on any module of a package it may not import or any forbidden library, and
checks each image's copied tree (the Dockerfile's COPY lines, the edge bundle, the MAP) against
:func:`closure`. The edge export and ``make map-package`` copy their trees from here (:func:`package_files`,
``python -m model_code.runtimes stage PACKAGE DIR``). docs/architecture.md shows this table; change both together.

Standard library only: ``make map-package`` runs it before any venv is involved.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MODEL_CODE = Path(__file__).resolve().parent

# Never imported by the production tree; tests and benchmarks only, copied into no image.
TEST_SUPPORT = "testkit"
# Heavy libraries that a package may or may not pull in; `forbidden` names a subset per package.
TORCH, MONAI, ONNXRUNTIME = "torch", "monai", "onnxruntime"
BOTO3, BOTOCORE, IMAGECODECS = "boto3", "botocore", "imagecodecs"


@dataclass(frozen=True)
class Package:
    """``model_code.<name>``: the packages it may import (besides itself) and the libraries it must not.

    ``forbidden`` libraries are not loaded when the package is imported and appear in no import of its sources,
    with two deliberate exceptions: ``pulled_in`` ones a third-party library it uses loads (where installed), and
    ``optional`` ones its sources import inside the one function of an optional feature.
    """

    name: str
    imports: tuple[str, ...]
    forbidden: tuple[str, ...]
    why: str
    pulled_in: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


PACKAGES: dict[str, Package] = {
    package.name: package
    for package in (
        # The DICOMweb client signs HealthImaging's requests with botocore's SigV4, imported inside the signer's
        # calls only: importing the core never loads botocore, and a runtime without it reads plain servers.
        Package("core", (), (TORCH, MONAI, BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "numpy, pydicom and nibabel; highdicom in the SEG writer only; dicomweb-client in dicomweb/",
                optional=(BOTOCORE,)),
        Package("synthetic", (), (TORCH, MONAI, BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "phantoms and DICOM series written from them (make demo, the ONNX export check, the servers' warm-up)"),
        # MONAI imports tensorboard where it is installed, and tensorboard imports boto3 where that is installed.
        Package("segmentation", ("core",), (BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "the torch engine: pipeline, transforms, networks, the predict CLI", pulled_in=(BOTO3, BOTOCORE)),
        Package("healthimaging", ("core",), (TORCH, MONAI, ONNXRUNTIME),
                "the AWS HealthImaging connector (boto3, imagecodecs' HTJ2K)"),
        # serving, triton_model, edge -> synthetic: each segments a phantom before it reports ready (warmup.py).
        Package("serving", ("core", "segmentation", "healthimaging", "synthetic"), (ONNXRUNTIME,),
                "the SageMaker async endpoint: series from a zip, S3 or HealthImaging"),
        Package("triton_model", ("core", "segmentation", "synthetic"), (BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "the Triton python-backend model: zips in, SEGs out"),
        # A TorchScript bundle runs on devices that carry torch: the engine imports it for that format only.
        Package("edge", ("core", "synthetic"), (TORCH, MONAI, BOTO3, BOTOCORE, IMAGECODECS),
                "the offline edge runner: numpy + onnxruntime", optional=(TORCH,)),
        Package("map_app", ("core", "healthimaging"), (ONNXRUNTIME,),
                "the MONAI Deploy app: stock operators, our HealthImaging loader"),
        Package("training", ("core", "segmentation", "synthetic"), (BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "the SageMaker trainer; the CPU demo trains on synthetic phantoms", pulled_in=(BOTO3, BOTOCORE)),
        # The export reads the MONAI bundle with the serving side's reader (segmentation.bundle), so the edge applies
        # what the cloud applies; MONAI imports tensorboard, which imports boto3, where they are installed.
        Package("export", ("core", "edge", "segmentation", "synthetic", "runtimes"), (BOTO3, BOTOCORE, IMAGECODECS),
                "build-machine tool: MONAI bundle -> ONNX/TorchScript edge bundle, checked on phantoms",
                pulled_in=(BOTO3, BOTOCORE)),
        Package("runtimes", (), (TORCH, MONAI, BOTO3, BOTOCORE, ONNXRUNTIME, IMAGECODECS),
                "this table, and the tree each deliverable carries (a module, standard library only)"),
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


def package_files(name: str) -> list[str]:
    """The Python sources a deliverable of ``name`` carries, relative to the model_code folder (POSIX, sorted):
    ``__init__.py`` and every module of the packages in :func:`closure`."""
    files = ["__init__.py"]
    for package in closure(name):
        folder = MODEL_CODE / package
        if folder.is_dir():
            files += [path.relative_to(MODEL_CODE).as_posix() for path in folder.rglob("*.py")]
        else:
            files.append(f"{package}.py")
    return sorted(files)


def stage(name: str, target: Path) -> Path:
    """Copy :func:`package_files` of ``name`` into ``target`` (a fresh ``model_code`` folder); returns it."""
    target = Path(target)
    if target.exists():
        shutil.rmtree(target)
    for relative in package_files(name):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(MODEL_CODE / relative, destination)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_code.runtimes", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    staging = commands.add_parser("stage", help="copy a package and what it may import into DIR (a model_code)")
    staging.add_argument("package", choices=sorted(PACKAGES))
    staging.add_argument("target", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    print(stage(args.package, args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
